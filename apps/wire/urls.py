"""Where foreign SDKs post: host=<portal>/posthog, host=<portal>/segment and the OTLP endpoint <portal>/otlp;
and <portal>/v1/batch, where @segment/analytics-node posts given either host.

The trailing slash is optional on every path. The schema shows each path as its SDKs spell it: `/?` reads as
a slash there (PostHog's `/batch/`), `(?:/)?` as none (Segment's `/v1/batch`).
"""

from django.urls import re_path

from . import api
from .segment import TYPES

urlpatterns = [
    re_path(r"^posthog/batch/?$", api.PostHogBatchView.as_view(), name="posthog-batch"),
    re_path(r"^posthog/capture/?$", api.PostHogCaptureAliasView.as_view(), name="posthog-capture"),
    re_path(r"^posthog/e/?$", api.PostHogEView.as_view(), name="posthog-e"),
    re_path(r"^posthog/i/v0/e/?$", api.PostHogIV0EView.as_view(), name="posthog-i-v0-e"),
    re_path(r"^posthog/i/v0/ai/batch/?$", api.PostHogAiBatchView.as_view(), name="posthog-i-v0-ai-batch"),
    re_path(r"^posthog/flags/?$", api.PostHogFlagsView.as_view(), name="posthog-flags"),
    re_path(r"^posthog/decide/?$", api.PostHogDecideView.as_view(), name="posthog-decide"),
    # posthog-js's remote config, asked of its assets host: its api_host, unless that is PostHog's cloud.
    re_path(
        r"^posthog/array/(?P<token>[^/]+)/config(?:/)?$",
        api.PostHogRemoteConfigView.as_view(),
        name="posthog-remote-config",
    ),
    re_path(
        r"^posthog/array/(?P<token>[^/]+)/config\.js(?:/)?$",
        api.PostHogRemoteConfigScriptView.as_view(),
        name="posthog-remote-config-js",
    ),
    re_path(r"^segment/v1/batch(?:/)?$", api.SegmentBatchView.as_view(), name="segment-batch"),
    # @segment/analytics-node given host=<portal>/segment posts here (see api.SegmentRootBatchView).
    re_path(r"^v1/batch(?:/)?$", api.SegmentRootBatchView.as_view(), name="segment-batch-root"),
    *(
        re_path(
            rf"^segment/v1/{kind}(?:/)?$", api.SEGMENT_MESSAGE_VIEWS[kind].as_view(), name=f"segment-{kind}"
        )
        for kind in TYPES
    ),
    re_path(r"^otlp/v1/logs(?:/)?$", api.OtlpLogsView.as_view(), name="otlp-logs"),
    re_path(r"^otlp/v1/traces(?:/)?$", api.OtlpTracesView.as_view(), name="otlp-traces"),
]
