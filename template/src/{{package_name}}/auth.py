"""Bearer-token authentication: JWTs issued by the organisation's OIDC provider.

Endpoints that write, or spend the model, depend on `authenticate` (or declare
`dependencies=[Depends(authenticate)]`); health, readiness, metrics and the API docs stay
open. A token passes when its signature verifies against a key of the issuer's JWKS (found
through OIDC_ISSUER's discovery document, or OIDC_JWKS_URL) with an asymmetric algorithm,
and its `iss`, `aud`, `exp`, `iat` and `sub` are right. Anything else is a 401 with
`WWW-Authenticate: Bearer`; a JWKS that cannot be fetched is a 503 (the token was not judged).

Without OIDC_ISSUER the service refuses to start, except in the local environments
(local, test, e2e) where it answers 401 on the protected endpoints and says what to set.
AUTH_DISABLED=true lets every request in as "anonymous", for a local run only.
"""

import json
import logging
import time
import urllib.request
from dataclasses import dataclass, field
from threading import Lock
from typing import Annotated, Any
from urllib.parse import urlsplit

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .settings import Settings

log = logging.getLogger(__name__)

# Asymmetric algorithms only: never "none", never HS* (a public key is no shared secret).
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA")
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]
LEEWAY_SECONDS = 30  # clock skew between the issuer and this service
JWKS_CACHE_SECONDS = 300
FETCH_TIMEOUT_SECONDS = 5.0
DISCOVERY_RETRY_SECONDS = 10.0
# Where a missing issuer is tolerated (protected endpoints then answer 401) and
# AUTH_DISABLED is allowed. Every other environment (staging, production, ...) needs OIDC_ISSUER.
LOCAL_ENVIRONMENTS = frozenset({"local", "test", "e2e"})
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class AuthConfigError(RuntimeError):
    """The service is configured in a way that would leave its endpoints open."""


class KeysUnavailableError(Exception):
    """The issuer's discovery document or JWKS could not be fetched."""


@dataclass(frozen=True)
class Principal:
    """Who called: the token's subject and all its claims."""

    subject: str
    claims: dict[str, Any] = field(default_factory=dict)


ANONYMOUS = Principal("anonymous")


def check_url(url: str, what: str) -> str:
    """An https URL, or http on this machine's loopback (tests, a local issuer)."""
    parts = urlsplit(url)
    loopback = parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS
    if not (parts.scheme == "https" or loopback) or not parts.hostname:
        raise AuthConfigError(f"{what} must be an https URL (http only on 127.0.0.1), got {url!r}")
    if parts.query or parts.fragment or any(c.isspace() for c in url):
        raise AuthConfigError(f"{what} must have no query, fragment or spaces, got {url!r}")
    return url


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the URL was checked, where it redirects to was not


def _fetch_json(url: str) -> dict[str, Any]:
    """GET a JSON object from a URL that passed `check_url`."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    opener = urllib.request.build_opener(_NoRedirects())
    try:
        with opener.open(request, timeout=FETCH_TIMEOUT_SECONDS) as answer:
            document = json.load(answer)
    except (OSError, ValueError) as error:
        raise KeysUnavailableError(f"{url}: {error}") from error
    if not isinstance(document, dict):
        raise KeysUnavailableError(f"{url}: not a JSON object")
    return document


class TokenVerifier:
    """Verifies bearer tokens of one issuer and audience; keys come from its JWKS, cached."""

    def __init__(self, issuer: str, audience: str, jwks_url: str | None = None) -> None:
        self.issuer = check_url(issuer, "OIDC_ISSUER")
        self.audience = audience
        self._jwks_url = check_url(jwks_url, "OIDC_JWKS_URL") if jwks_url else None
        self._client: jwt.PyJWKClient | None = None
        self._failed_at = -DISCOVERY_RETRY_SECONDS
        self._lock = Lock()

    def _discover(self) -> str:
        """The JWKS URL named by the issuer's OpenID discovery document."""
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = _fetch_json(url)
        if document.get("issuer") != self.issuer:
            raise KeysUnavailableError(
                f"{url} names issuer {document.get('issuer')!r}, not OIDC_ISSUER {self.issuer!r}"
            )
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise KeysUnavailableError(f"{url} has no jwks_uri")
        try:
            return check_url(jwks_uri, "the discovered jwks_uri")
        except AuthConfigError as error:
            raise KeysUnavailableError(str(error)) from error

    def _keys(self) -> jwt.PyJWKClient:
        with self._lock:
            if self._client is None:
                # A failed discovery is retried at most every DISCOVERY_RETRY_SECONDS: an
                # issuer that is down is not hammered once per request.
                if time.monotonic() - self._failed_at < DISCOVERY_RETRY_SECONDS:
                    raise KeysUnavailableError("the issuer's discovery failed moments ago")
                try:
                    jwks_url = self._jwks_url or self._discover()
                except KeysUnavailableError:
                    self._failed_at = time.monotonic()
                    raise
                # At most one forced refresh per cooldown for unknown key ids: a flood of
                # tokens with made-up `kid`s never turns into a flood of requests to the issuer.
                self._client = jwt.PyJWKClient(
                    jwks_url,
                    lifespan=JWKS_CACHE_SECONDS,
                    timeout=FETCH_TIMEOUT_SECONDS,
                    cooldown_duration=30,
                )
            return self._client

    def verify(self, token: str) -> Principal:
        """The token's principal; raises jwt.InvalidTokenError or KeysUnavailableError."""
        kid = jwt.get_unverified_header(token).get("kid")
        if not isinstance(kid, str):
            raise jwt.InvalidTokenError("the token names no signing key (kid)")
        keys = self._keys()
        try:
            keys.get_signing_keys()  # from the cache, or fetched: the JWKS itself must be sound
        except (jwt.PyJWKClientError, jwt.PyJWKSetError) as error:
            raise KeysUnavailableError(str(error)) from error
        try:
            key = keys.get_signing_key(kid)
        except (jwt.PyJWKClientConnectionError, jwt.PyJWKSetError) as error:
            raise KeysUnavailableError(str(error)) from error
        except jwt.PyJWKClientError as error:  # no key with the token's kid, even after a refresh
            raise jwt.InvalidTokenError(str(error)) from error
        claims = jwt.decode(
            token,
            key,
            algorithms=list(ALGORITHMS),
            audience=self.audience,
            issuer=self.issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": REQUIRED_CLAIMS},
        )
        return Principal(str(claims["sub"]), claims)


class Authenticator:
    """What the `authenticate` dependency asks: a verifier, or why there is none."""

    def __init__(self, verifier: TokenVerifier | None, disabled: bool = False) -> None:
        self.verifier = verifier
        self.disabled = disabled

    @classmethod
    def from_settings(cls, settings: Settings) -> "Authenticator":
        """The authenticator the settings ask for; refuses settings that leave the API open."""
        local = settings.environment in LOCAL_ENVIRONMENTS
        if settings.auth_disabled:
            if not local:
                raise AuthConfigError(
                    f"AUTH_DISABLED=true is for local runs only (ENVIRONMENT is "
                    f"{settings.environment!r}): unset it and set OIDC_ISSUER"
                )
            log.warning("authentication is DISABLED: every request is let in as 'anonymous'")
            return cls(None, disabled=True)
        if not settings.oidc_issuer:
            if not local:
                raise AuthConfigError(
                    f"OIDC_ISSUER is not set (ENVIRONMENT is {settings.environment!r}): set it to "
                    "the organisation's OIDC issuer URL, and OIDC_AUDIENCE to this service's "
                    "audience; the protected endpoints never run without token checks"
                )
            return cls(None)
        verifier = TokenVerifier(
            settings.oidc_issuer, settings.oidc_audience, settings.oidc_jwks_url
        )
        return cls(verifier)

    def authenticate(self, token: str | None) -> Principal:
        if self.disabled:
            return ANONYMOUS
        if self.verifier is None:
            raise _unauthorized(
                "authentication is not configured: set OIDC_ISSUER (or AUTH_DISABLED=true "
                "for a local run)",
                error=None,
            )
        if not token:
            raise _unauthorized("a bearer token is required", error=None)
        try:
            return self.verifier.verify(token)
        except KeysUnavailableError as error:
            log.error("cannot fetch the token issuer's keys: %s", error)
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "the token issuer's keys cannot be fetched; try again later",
                headers={"Retry-After": "30"},
            ) from None
        except jwt.ExpiredSignatureError:
            raise _unauthorized("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise _unauthorized("the token is not for this service (audience)") from None
        except jwt.InvalidIssuerError:
            raise _unauthorized("the token comes from another issuer") from None
        except jwt.MissingRequiredClaimError as error:
            raise _unauthorized(f"the token has no {error.claim!r} claim") from None
        except jwt.InvalidTokenError:
            raise _unauthorized("the token is invalid") from None


def _unauthorized(detail: str, error: str | None = "invalid_token") -> HTTPException:
    challenge = "Bearer" if error is None else f'Bearer error="{error}"'
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": challenge}
    )


bearer = HTTPBearer(
    bearerFormat="JWT",
    scheme_name="bearer",
    description="An access token of the organisation's OIDC issuer, for this service's audience",
    auto_error=False,
)


def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """FastAPI dependency: the caller's principal, or 401 (503 if the keys are unreachable)."""
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator.authenticate(credentials.credentials if credentials else None)


Caller = Annotated[Principal, Depends(authenticate)]
