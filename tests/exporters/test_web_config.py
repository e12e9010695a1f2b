"""The web configuration file: checked at start with every problem on its line, secrets never
echoed; fuzzed, nothing but its own error escapes."""

from __future__ import annotations

import contextlib
from pathlib import Path

import bcrypt
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporters.web_config import WebConfigError, parse_web_config
from tests.exporters.test_serve_hardening import certificate


def problems(text: str, base: Path) -> list[str]:
    with pytest.raises(WebConfigError) as raised:
        parse_web_config(text, base)
    return [str(problem) for problem in raised.value.problems]


def test_a_good_file_gives_tls_paths_and_users(tmp_path: Path) -> None:
    certificate(tmp_path)
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    text = (
        "tls_server_config: {cert_file: server.crt, key_file: server.key}\n"
        f"basic_auth_users: {{prometheus: '{hashed}'}}\n"
    )
    web = parse_web_config(text, tmp_path)
    assert web.tls and web.cert_file == tmp_path / "server.crt"
    assert web.uvicorn_options()["ssl_keyfile"] == str(tmp_path / "server.key")
    assert web.users == {"prometheus": hashed.encode()}


def test_an_empty_file_means_no_tls_and_no_users(tmp_path: Path) -> None:
    web = parse_web_config("", tmp_path)
    assert not web.tls and web.users == {} and web.uvicorn_options() == {}


def test_a_key_of_another_certificate_is_refused(tmp_path: Path) -> None:
    certificate(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    certificate(other)
    found = problems(
        "tls_server_config: {cert_file: server.crt, key_file: other/server.key}\n", tmp_path
    )
    assert len(found) == 1 and "do not load as a pair" in found[0]


def test_every_problem_is_listed_and_no_secret_echoed(tmp_path: Path) -> None:
    text = (
        "tls_server_config:\n"
        "  cert_file: nowhere.crt\n"
        "  key_file: nowhere.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
        "basic_auth_users:\n"
        "  prometheus: $1$notbcrypt$secretsecret\n"
        "unknown: 1\n"
    )
    found = problems(text, tmp_path)
    joined = "\n".join(found)
    assert "line 2: tls_server_config.cert_file: no such file" in joined
    assert "needs client_ca_file" in joined
    assert "not a bcrypt hash" in joined and "secretsecret" not in joined
    assert "unknown" in joined


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    document=st.dictionaries(
        st.sampled_from(["tls_server_config", "basic_auth_users", "x"]),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=30),
            lambda inner: (
                st.dictionaries(st.text(max_size=12), inner, max_size=3)
                | st.lists(inner, max_size=3)
            ),
            max_leaves=8,
        ),
        max_size=3,
    )
)
def test_any_document_gives_a_web_config_or_its_error(document: dict[str, object]) -> None:
    with contextlib.suppress(WebConfigError):
        parse_web_config(yaml.safe_dump(document), Path("/nonexistent"))
