import pytest

from regression_pipelines.errors import ResourceConfigError, mask_secrets
from resources._network import is_loopback, require_allowed_host


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://regress:s3cret@127.0.0.1:5432/db",
        "host=127.0.0.1 password=s3cret user=x",
        "amqp://guest:s3cret@localhost/",
        "token: s3cret",
    ],
)
def test_mask_secrets_hides_passwords(text: str) -> None:
    assert "s3cret" not in mask_secrets(text)


def test_resource_error_names_field_and_fix_and_masks_literal_secret() -> None:
    err = ResourceConfigError("PostgresResource", "password", "auth failed for hunter2", "set X", "hunter2")
    assert str(err).startswith("PostgresResource.password: auth failed for ***")
    assert "Fix: set X" in str(err)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


def test_non_loopback_host_is_refused_unless_allow_listed() -> None:
    with pytest.raises(ResourceConfigError, match="RedisResource.host"):
        require_allowed_host("RedisResource", "10.1.2.3", [])
    require_allowed_host("RedisResource", "10.1.2.3", ["10.1.2.3"])
