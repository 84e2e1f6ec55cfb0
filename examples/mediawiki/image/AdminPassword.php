<?php
/**
 * Gives the wiki's administrator (Admin) the stack's own password, read from ADMIN_PASSWORD in the environment, never
 * from the command line: the release's after_install hook runs it for each new customer, whose wiki came from the
 * vanilla backup (made with publishing's throwaway password).
 */
require_once __DIR__ . '/Maintenance.php';

class AdminPassword extends Maintenance {
	public function __construct() {
		parent::__construct();
		$this->addDescription( "Set the password of the wiki's Admin account from \$ADMIN_PASSWORD" );
	}

	public function execute() {
		$password = getenv( 'ADMIN_PASSWORD' );
		if ( !$password ) {
			$this->fatalError( 'ADMIN_PASSWORD is not set in the environment' );
		}
		$user = User::newFromName( 'Admin' );
		if ( !$user || !$user->isRegistered() ) {
			$this->fatalError( 'the wiki has no Admin account' );
		}
		$status = $user->changeAuthenticationData( [
			'username' => $user->getName(),
			'password' => $password,
			'retype' => $password,
		] );
		if ( !$status->isGood() ) {
			$this->fatalError( $status->getMessage( false, false, 'en' )->text() );
		}
		$this->output( "Admin's password set from ADMIN_PASSWORD\n" );
	}
}

$maintClass = AdminPassword::class;
require_once RUN_MAINTENANCE_IF_MAIN;
