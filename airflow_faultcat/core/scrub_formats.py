"""Token formats that detect-secrets has no plugin for, from each vendor's documented token shape.

Each entry is ``(rule_id, triggers, regex)``: :mod:`airflow_faultcat.core.scrub` turns it into a
:class:`~airflow_faultcat.core.scrub.SecretRule` that matches whole tokens only (not inside a longer
word). A format is listed only when its prefix is distinctive enough that a match is a credential;
shapes that need context (a 32-character hex API key) are left to the key-value rules.
"""

from __future__ import annotations

__all__ = ["VENDOR_TOKENS"]

#: ``(rule_id, lower-case trigger literals, regex)`` per vendor token format.
VENDOR_TOKENS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    # Package registries and CI
    ("npm_token", ("npm_",), r"npm_[A-Za-z0-9]{36}"),
    ("docker_hub_token", ("dckr_pat_", "dckr_oat_"), r"dckr_(?:pat|oat)_[A-Za-z0-9_\-]{20,}"),
    ("rubygems_token", ("rubygems_",), r"rubygems_[a-f0-9]{48}"),
    ("buildkite_token", ("bkua_",), r"bkua_[a-f0-9]{40}"),
    ("circleci_token", ("ccipat_",), r"CCIPAT_[A-Za-z0-9]{22}_[a-f0-9]{40}"),
    ("artifactory_token", ("akc",), r"AKC[a-zA-Z0-9]{60,}"),
    ("terraform_cloud_token", (".atlasv1.",), r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9\-_=]{60,}"),
    ("pulumi_token", ("pul-",), r"pul-[a-f0-9]{40}"),
    ("doppler_token", ("dp.",), r"dp\.(?:st|sa|ct|pt|scim|audit)\.[A-Za-z0-9_\-.]{40,}"),
    ("fly_token", ("fo1_", "fm2_"), r"(?:fo1_[A-Za-z0-9_\-]{43}|fm2_[A-Za-z0-9+/=_\-]{40,})"),
    ("netlify_token", ("nfp_",), r"nfp_[A-Za-z0-9]{36}"),
    ("supabase_token", ("sbp_", "sb_secret_"), r"(?:sbp_[a-f0-9]{40}|sb_secret_[A-Za-z0-9_\-]{20,})"),
    ("onepassword_token", ("ops_ey",), r"ops_eyJ[A-Za-z0-9+/=_\-]{40,}"),
    # Cloud and infrastructure
    ("digitalocean_token", ("dop_v1_", "doo_v1_", "dor_v1_"), r"do[opr]_v1_[a-f0-9]{64}"),
    ("azure_ad_client_secret", ("q~",), r"[A-Za-z0-9_~.\-]{3}\dQ~[A-Za-z0-9_~.\-]{31,34}"),
    ("heroku_token", ("hrku-",), r"HRKU-[A-Za-z0-9_\-]{60}"),
    ("tailscale_key", ("tskey-",), r"tskey-(?:auth|api|client|scim|webhook)-[A-Za-z0-9]+-[A-Za-z0-9]+"),
    ("age_secret_key", ("age-secret-key-",), r"AGE-SECRET-KEY-1[0-9A-Z]{58}"),
    # A Ceph (cephx) key: base64 of 28 bytes whose header makes it start with "AQ".
    ("ceph_key", ("re:aq[a-z0-9+/]{36}==",), r"AQ[A-Za-z0-9+/]{36}=="),
    ("dynatrace_token", ("dt0c01.",), r"dt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64}"),
    # Monitoring and collaboration
    ("new_relic_key", ("nrak-", "nrii-", "nrjs-", "nraa-"), r"NR(?:AK|II|JS|AA)-[A-Za-z0-9]{20,42}"),
    (
        "grafana_token",
        ("glsa_", "glc_"),
        r"(?:glsa_[A-Za-z0-9]{32}_[a-f0-9]{8}|glc_[A-Za-z0-9+/]{32,}={0,2})",
    ),
    ("sentry_token", ("sntrys_", "sntryu_"), r"sntry[su]_[A-Za-z0-9+/=_\-]{40,}"),
    ("atlassian_token", ("atatt3",), r"ATATT3[A-Za-z0-9_\-=]{150,}"),
    ("linear_token", ("lin_api_",), r"lin_api_[A-Za-z0-9]{40}"),
    ("notion_token", ("ntn_", "secret_"), r"(?:ntn_[A-Za-z0-9]{40,}|secret_[A-Za-z0-9]{43})"),
    ("airtable_token", ("pat",), r"pat[A-Za-z0-9]{14}\.[a-f0-9]{64}"),
    ("postman_key", ("pmak-",), r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}"),
    ("shopify_token", ("shpat_", "shpss_", "shpca_", "shppa_"), r"shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}"),
    ("mailgun_key", ("key-",), r"key-[0-9a-f]{32}"),
    ("brevo_key", ("xkeysib-",), r"xkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}"),
    ("facebook_token", ("eaacedeose0cba",), r"EAACEdEose0cBA[0-9A-Za-z]+"),
    ("mapbox_secret_token", ("sk.ey",), r"sk\.eyJ[A-Za-z0-9_\-]{20,}\.[A-Za-z0-9_\-]{20,}"),
    ("shippo_token", ("shippo_live_", "shippo_test_"), r"shippo_(?:live|test)_[a-f0-9]{40}"),
    # Generic live/prod key prefixes (payment and SaaS APIs copy Stripe's shape)
    ("api_key", ("_live_", "_prod_"), r"[a-z]{2,4}_(?:live|prod)_[A-Za-z0-9]{16,}"),
)
