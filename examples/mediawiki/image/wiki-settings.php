<?php
# The product's MediaWiki settings: fixed choices here, the customer's settings and the stack's secrets from the
# environment compose.yaml gives the service (release.yaml declares them), so one image serves every customer.
if ( !defined( 'MEDIAWIKI' ) ) {
	exit;
}
$wgSitename = getenv( 'SITE_NAME' ) ?: 'Wiki';
$wgMetaNamespace = 'Project';
$wgServer = getenv( 'PUBLIC_URL' );
$wgScriptPath = '';
$wgResourceBasePath = $wgScriptPath;
$wgLanguageCode = getenv( 'LANGUAGE' ) ?: 'en';
$wgEmergencyContact = getenv( 'ADMIN_EMAIL' );
$wgPasswordSender = getenv( 'ADMIN_EMAIL' );
$wgEnableEmail = false;

$wgDBtype = 'mysql';
$wgDBserver = 'db';
$wgDBname = 'wiki';
$wgDBuser = 'wiki';
$wgDBpassword = getenv( 'DB_PASSWORD' );
$wgDBprefix = '';
$wgDBTableOptions = 'ENGINE=InnoDB, DEFAULT CHARSET=binary';

$wgSecretKey = getenv( 'SECRET_KEY' );
$wgUpgradeKey = substr( hash( 'sha256', 'upgrade' . $wgSecretKey ), 0, 16 );
$wgAuthenticationTokenVersion = '1';

$wgMainCacheType = CACHE_NONE;
$wgEnableUploads = true;
$wgUploadDirectory = '/var/lib/mediawiki/images';
$wgUploadPath = "$wgScriptPath/images";
$wgRightsText = '';
$wgDefaultSkin = 'vector';
wfLoadSkin( 'Vector' );
# Only the wiki's own accounts edit.
$wgGroupPermissions['*']['edit'] = false;
$wgGroupPermissions['*']['createaccount'] = false;
