"""azure-core client options that read the proxy and CA environment once, not on every request.

By default azure-core's requests transport trusts the environment, and requests then scans every
environment variable twice per request (`*_proxy`, `NO_PROXY`), looks for a `.netrc` file and reads
`REQUESTS_CA_BUNDLE`: about a fifth of the CPU of a Table Storage request on the webhook's path.
Each of the relay's clients talks to one endpoint, so the outcome is the same for all its requests:
it is worked out here once, with requests' own functions, when the client is built (an app setting
change restarts the Functions worker, so nothing read at start-up goes stale). `HTTPS_PROXY`,
`HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY` and `REQUESTS_CA_BUNDLE`/`CURL_CA_BUNDLE` keep working as
before. `.netrc` is no longer read: its Basic credentials would have replaced the SDKs' own
`Authorization` header, so no working setup relied on it.
"""

from __future__ import annotations

import os
from typing import Any

from requests.utils import get_environ_proxies


def client_options(url: str, *, verify: bool | str = True) -> dict[str, Any]:
    """Client keyword arguments for `url`: the environment's proxies and CA bundle, read now.

    `verify` is what the client would get otherwise (`connection_verify`): a bundle path given
    explicitly wins over the environment's, as it does in requests.
    """
    options: dict[str, Any] = {"use_env_settings": False}
    proxies = get_environ_proxies(url)  # {} when NO_PROXY covers the host, as per request before
    if proxies:
        options["proxies"] = proxies
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if verify is True and bundle:
        options["connection_verify"] = bundle
    elif verify is not True:
        options["connection_verify"] = verify
    return options
