"""A real OIDC issuer on 127.0.0.1 for the template's tests of generated services.

It serves the discovery document, the JWKS of an RSA key made at start, and a token endpoint
for the client-credentials grant (one client: CLIENT_ID / CLIENT_SECRET), and signs tokens
for the tests themselves. Generated services started by tests/support/service.py trust it.
"""

from __future__ import annotations

import base64
import threading
import time
import urllib.parse
from http.server import ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from .json_api import JsonHandler, start_serving

AUDIENCE = "my-service"  # the default answer of oidc_audience for project_slug my-service
CLIENT_ID = "my-service-ci"
CLIENT_SECRET = "local-test-secret"  # a test issuer's client, nothing real


class LocalIssuer:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "template-test-key"
        self.token_requests: list[dict[str, str]] = []  # form fields of the token requests
        issuer = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                documents = {
                    "/.well-known/openid-configuration": {
                        "issuer": issuer.url,
                        "jwks_uri": f"{issuer.url}/jwks.json",
                        "token_endpoint": f"{issuer.url}/token",
                        "grant_types_supported": ["client_credentials"],
                    },
                    "/jwks.json": issuer.jwks(),
                }
                self.reply(200 if self.path in documents else 404, documents.get(self.path, {}))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                basic = self.headers.get("Authorization", "")
                if basic.startswith("Basic "):
                    client, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
                    form |= {"client_id": client, "client_secret": secret}
                issuer.token_requests.append(form)
                if self.path != "/token":
                    self.reply(404, {})
                elif form.get("grant_type") != "client_credentials":
                    self.reply(400, {"error": "unsupported_grant_type"})
                elif (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
                    self.reply(401, {"error": "invalid_client"})
                else:
                    token = issuer.token(CLIENT_ID, audience=form.get("audience") or AUDIENCE)
                    self.reply(200, {"access_token": token, "token_type": "Bearer", "expires_in": 300})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        start_serving(self._server)

    def jwks(self) -> dict[str, Any]:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def token(self, subject: str = "template-tests", *, audience: str = AUDIENCE,
              expires_in: int = 600) -> str:
        now = int(time.time())
        claims = {"iss": self.url, "aud": audience, "sub": subject, "iat": now, "exp": now + expires_in}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})

    def service_env(self) -> dict[str, str]:
        """What a generated service needs to trust this issuer."""
        return {"OIDC_ISSUER": self.url, "OIDC_AUDIENCE": AUDIENCE}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


_shared: LocalIssuer | None = None
_lock = threading.Lock()


def shared_issuer() -> LocalIssuer:
    """One issuer for the whole test session (started on first use, a daemon thread)."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = LocalIssuer()
        return _shared
