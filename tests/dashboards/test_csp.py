"""Chart pages allow inline styles (plotly.js needs them) and nothing else beyond the portal's policy."""

from apps.dashboards.csp import with_inline_styles

PORTAL = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; frame-ancestors 'none'"
)


def test_inline_styles_are_added_to_style_src_only():
    assert with_inline_styles(PORTAL) == (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "object-src 'none'; frame-ancestors 'none'"
    )


def test_a_policy_without_style_src_gets_one_from_default_src():
    assert with_inline_styles("default-src 'self' https://cdn.invalid") == (
        "default-src 'self' https://cdn.invalid; style-src 'self' https://cdn.invalid 'unsafe-inline'"
    )


def test_it_is_idempotent():
    once = with_inline_styles(PORTAL)

    assert with_inline_styles(once) == once
