"""Browser tests run the proxy with aiohttp's C parser only.

Which HTTP parser the proxy uses changes nothing a browser can see, and each
Chromium test takes seconds, so the root conftest's parser parametrization is
narrowed here instead of doubling the run.
"""

from __future__ import annotations

import pytest


@pytest.fixture(params=["c-parser"])
def http_parser(request) -> str:
    return request.param
