"""The image registry a stack's images come from: its address, and the login it may need.

The registry check speaks the registry's own auth (HTTP basic, or a bearer token from the realm it names) and
verifies TLS with the CA the Docker engine trusts for that registry (/etc/docker/certs.d/ADDRESS/ca.crt), never
with verification turned off. The host logs in with `docker login --password-stdin`: the password is never an
argument.
"""

import base64
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from incarnate.errors import ReleaseError, StoreError
from incarnate.host import Host

CERTS_D = Path("/etc/docker/certs.d")
MANIFESTS = (
    "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json"
)
LOOPBACK = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class Registry:
    address: str  # host[:port], what compose.yaml gets as ${INCARNATE_REGISTRY}
    username: str | None = None
    password: SecretStr | None = field(default=None, repr=False)
    source: str = "INCARNATE_REGISTRY"  # where its settings came from, for an operator

    def ca_file(self) -> Path | None:
        path = CERTS_D / self.address.split("/", 1)[0] / "ca.crt"
        return path if path.is_file() else None

    def base_url(self) -> str:
        """HTTPS, verified; plain HTTP only for a loopback registry the engine has no CA for (as Docker allows)."""
        host = self.address.split(":", 1)[0]
        scheme = "http" if host in LOOPBACK and self.ca_file() is None else "https"
        return f"{scheme}://{self.address.split('/', 1)[0]}"

    def _open(self, request: urllib.request.Request, what: str):
        context = (
            ssl.create_default_context(cafile=str(self.ca_file())) if self.ca_file() else ssl.create_default_context()
        )
        try:
            return urllib.request.urlopen(request, timeout=10, context=context)
        except urllib.error.HTTPError:
            raise
        except urllib.error.URLError as error:
            if isinstance(error.reason, ssl.SSLCertVerificationError):
                raise ReleaseError(
                    f"registry {self.address}: its TLS certificate is not trusted ({error.reason.verify_message}); "
                    f"put its "
                    f"CA into {CERTS_D}/{self.address.split('/', 1)[0]}/ca.crt on this machine and every host. "
                    f"Nothing was changed."
                ) from None
            raise StoreError(
                f"registry {self.address} does not answer {what} ({error.reason}); is it running? "
                f"(scripts/services.sh starts the local one)."
            ) from None
        except OSError as error:
            raise StoreError(f"registry {self.address} does not answer {what} ({error}).") from None

    def _credentials(self) -> str:
        if not self.username or self.password is None:
            raise ReleaseError(
                f"registry {self.address} asks for a login and {self.source} names none; save an "
                f"incarnate-registry block (address, username, password) and name it in stack.yaml's "
                f"`registry` or in INCARNATE_REGISTRY. Nothing was changed."
            )
        return base64.b64encode(f"{self.username}:{self.password.get_secret_value()}".encode()).decode()

    def _authorization(self, challenge: str, repository: str) -> str:
        """The Authorization header the registry's 401 challenge asks for: basic, or a bearer token from its realm."""
        scheme, _, rest = challenge.partition(" ")
        if scheme.lower() == "basic":
            return f"Basic {self._credentials()}"
        if scheme.lower() != "bearer":
            raise ReleaseError(
                f"registry {self.address} asks for {scheme or 'an unknown'} authentication, which incarnate does not "
                f"speak."
            )
        params = dict(part.split("=", 1) for part in _split_params(rest))
        params = {key.strip(): value.strip().strip('"') for key, value in params.items()}
        query = {"service": params.get("service", ""), "scope": params.get("scope", f"repository:{repository}:pull")}
        request = urllib.request.Request(
            f"{params['realm']}?{urllib.parse.urlencode(query)}",
            headers={"Authorization": f"Basic {self._credentials()}"},
        )
        try:
            with self._open(request, "for a token") as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise self._refused(error.code) from None
        return f"Bearer {answer.get('token') or answer.get('access_token')}"

    def _refused(self, code: int) -> ReleaseError:
        return ReleaseError(
            f"registry {self.address} refused the login of {self.username} from {self.source} (HTTP "
            f"{code}); check its username and password. Nothing was changed."
        )

    def digest(self, image: str) -> str | None:
        """The registry's digest of repository:tag (HEAD on its manifest), None when it has no such image."""
        repository, tag = image.rsplit(":", 1)
        return self._manifest(repository, tag, image)

    def has(self, repository: str, digest: str) -> bool:
        """Whether the registry still holds the manifest `digest` of `repository`, whatever its tags say now."""
        return self._manifest(repository, digest, f"{repository}@{digest}") is not None

    def _manifest(self, repository: str, reference: str, image: str) -> str | None:
        """HEAD on the manifest of repository at a tag or digest: its digest, None when the registry has none."""
        path = self.address.split("/", 1)[1] + "/" if "/" in self.address else ""
        url = f"{self.base_url()}/v2/{path}{repository}/manifests/{reference}"
        authorization = None
        for _ in range(2):
            headers = {"Accept": MANIFESTS, **({"Authorization": authorization} if authorization else {})}
            try:
                with self._open(
                    urllib.request.Request(url, method="HEAD", headers=headers), f"for {image}"
                ) as response:
                    return response.headers.get("Docker-Content-Digest") or "unknown"
            except urllib.error.HTTPError as error:
                if error.code == 404:
                    return None
                if error.code == 401 and authorization is None:
                    authorization = self._authorization(error.headers.get("WWW-Authenticate", ""), path + repository)
                    continue
                if error.code in (401, 403):
                    raise self._refused(error.code) from None
                raise StoreError(f"registry {self.address}: asking for {image} answered HTTP {error.code}.") from None
        raise self._refused(401)

    def login(self, host: Host) -> None:
        """`docker login` where the host's docker commands run, the password on stdin; nothing for an open registry."""
        if not self.username or self.password is None:
            return
        host.run(
            ["docker", "login", "--username", self.username, "--password-stdin", self.address.split("/", 1)[0]],
            what=f"logging in to registry {self.address}",
            error=ReleaseError,
            input=self.password.get_secret_value().encode(),
        )


def _split_params(text: str) -> list[str]:
    """`realm="https://a/token",service="reg",scope="repository:x:pull"` split at the commas outside quotes."""
    parts, current, quoted = [], "", False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    return [part for part in [*parts, current] if "=" in part]


def check_images(
    registry: Registry, images: list[str], what: str, outcome: str = "Nothing was changed."
) -> dict[str, str]:
    """repository:tag -> digest for every image; refused, before anything changes, when the registry lacks one."""
    digests = {image: registry.digest(image) for image in images}
    missing = [image for image, digest in digests.items() if digest is None]
    if missing:
        raise ReleaseError(
            f"registry {registry.address} lacks {', '.join(missing)} for {what}; push the release's "
            f"images first. {outcome}"
        )
    return {image: digest for image, digest in digests.items() if digest}


def check_pinned(registry: Registry, digests: dict[str, str], what: str) -> None:
    """Every image (repository:tag -> its published digest) is still in the registry by that digest, whatever the tag
    points at now; refused, before anything changes, naming the ones that are gone."""
    gone = [
        f"{image} ({digest})" for image, digest in digests.items() if not registry.has(image.rsplit(":", 1)[0], digest)
    ]
    if gone:
        raise ReleaseError(
            f"registry {registry.address} no longer holds {', '.join(gone)} as published for {what} (deleted, or "
            f"never copied there by digest); a stack runs only the image that was published: push that image again "
            f"(copy it by digest, e.g. `skopeo copy`, or `docker push` of the published image). Nothing was changed."
        )


BLOCK_PREFIX = "incarnate-registry/"
