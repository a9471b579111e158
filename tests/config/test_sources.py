"""The webhook sources, store and delivery sections: defaults and fail-closed validation."""

from __future__ import annotations

import pytest

from mfo_client.config import Config, ConfigError


def _problems(data: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        Config.from_mapping(data, source="cfg.yaml", env={})
    return [str(p) for p in info.value.problems]


def test_seed_style_secret_key_is_the_default_github_source() -> None:
    cfg = Config.from_mapping({"webhook_listener": {"path": "/webhook", "secret_key": "k"}}, env={})
    (source,) = cfg.webhook_listener.effective_sources()
    assert (source.name, source.path, source.scheme) == ("default", "/webhook", "github")
    assert [s.get_secret_value() for s in source.all_secrets] == ["k"]
    assert source.type_header == "X-GitHub-Event"
    assert source.delivery_header == "X-GitHub-Delivery"
    assert source.max_body_size == 25 * 1024 * 1024


def test_no_secret_and_no_sources_means_no_source() -> None:
    assert Config.from_mapping({}, env={}).webhook_listener.effective_sources() == []


def test_named_sources_with_rotation_and_presets() -> None:
    cfg = Config.from_mapping(
        {
            "webhook_listener": {
                "sources": [
                    {
                        "name": "gh",
                        "path": "/gh",
                        "secrets": ["new", "old"],
                        "max_body_size": "1MiB",
                    },
                    {"name": "svix", "path": "/sw", "scheme": "standard", "secret": "whsec_x"},
                    {"name": "open", "path": "/open", "scheme": "none"},
                ]
            }
        },
        env={},
    )
    gh, svix, open_ = cfg.webhook_listener.effective_sources()
    assert [s.get_secret_value() for s in gh.all_secrets] == ["new", "old"]
    assert gh.max_body_size == 1024 * 1024
    assert svix.delivery_header == "webhook-id" and svix.type_header is None
    assert open_.all_secrets == []
    assert cfg.redacted_dict()["webhook_listener"]["sources"][0]["secrets"] == ["***", "***"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"scheme": "github"}, 'scheme "github" needs a non-empty secret'),
        ({"scheme": "github", "secret": ""}, 'scheme "github" needs a non-empty secret'),
        ({"scheme": "none", "secret": "x"}, 'scheme "none" takes no secrets'),
        ({"scheme": "hmac", "secret": "x"}, 'scheme "hmac" needs an hmac: section'),
        ({"scheme": "sha256", "secret": "x"}, "must be one of github, standard, stripe"),
        (
            {
                "scheme": "hmac",
                "secret": "x",
                "hmac": {"header": "X-Sig", "signed_content": "{ts}"},
            },
            "signed_content must contain {body}",
        ),
    ],
)
def test_sources_fail_closed(source: dict[str, object], message: str) -> None:
    problems = _problems({"webhook_listener": {"sources": [{"name": "s", "path": "/s", **source}]}})
    assert len(problems) == 1
    assert problems[0].startswith("cfg.yaml: webhook_listener.sources[0]")
    assert message in problems[0]


def test_duplicate_source_paths_are_refused() -> None:
    (problem,) = _problems(
        {
            "webhook_listener": {
                "secret_key": "k",
                "sources": [
                    {"name": "a", "path": "/x", "scheme": "none"},
                    {"name": "b", "path": "/x", "scheme": "none"},
                ],
            }
        }
    )
    assert 'two sources listen on "/x"' in problem


def test_store_and_delivery_defaults_and_errors() -> None:
    cfg = Config.from_mapping({}, env={})
    assert cfg.store.path == ".mfo/mfo.db" and cfg.store.fsync == "normal"
    assert cfg.store.retention.days == 7
    assert cfg.delivery.max_attempts == 20 and cfg.delivery.concurrency == 4
    problems = _problems({"store": {"fsync": "always"}, "delivery": {"max_attempts": 0}})
    assert 'cfg.yaml: store.fsync: must be one of normal, full, got "always"' in problems
    assert "cfg.yaml: delivery.max_attempts: must be >= 1, got 0" in problems


def test_whitespace_secret_and_a_shadowed_default_source_are_refused() -> None:
    (blank,) = _problems(
        {"webhook_listener": {"sources": [{"name": "s", "path": "/s", "secret": "  "}]}}
    )
    assert 'scheme "github" needs a non-empty secret' in blank
    (shadowed,) = _problems(
        {
            "webhook_listener": {
                "path": "/webhook",
                "secret_key": "k",
                "sources": [{"name": "gh", "path": "/webhook", "secret": "x"}],
            }
        }
    )
    assert 'secret_key makes "/webhook" the default source, and source "gh" listens there' in (
        shadowed
    )
