"""Bringing the bus up for an installation: the topics of the catalogue, the SCRAM users and ACLs of
the circle, the schemas under FULL_TRANSITIVE, and the signing keys (`tongcheng topics apply`,
`tongcheng up`, the benchmark, the chaos run and the integration tests)."""

from __future__ import annotations

from typing import Any

from topics.context import Context


def register_schemas(ctx: Context) -> list[tuple[str, int]]:
    out = []
    for spec in ctx.topics.specs():
        if spec.event_type is None or spec.subject is None:
            continue
        if ctx.registry.compatibility_or_none(spec.subject) != "FULL_TRANSITIVE":
            ctx.registry.set_compatibility(spec.subject, "FULL_TRANSITIVE")
        out.append((spec.subject, ctx.registry.register(spec.subject, ctx.schemas.text(spec.event_type.schema))))
    return out


def apply_acls(ctx: Context, admin: Any, say: Any = None, verbose: bool = False) -> None:
    """The SCRAM users and ACLs of topics/acls.py for the circle (nothing in the insecure mode,
    whose broker has no authorizer)."""
    from topics import acl_sync, acls

    if ctx.settings.insecure:
        return
    users = acl_sync.ensure_users(admin, ctx.settings)
    result = acl_sync.apply(admin, ctx.topics.prefix, acls.city_codes(ctx.settings))
    if say:
        if users:
            say(f"created SCRAM users {', '.join(users)} (secrets in {ctx.settings.secrets_file})")
        lines = result.lines(applied=True)
        for line in lines if verbose else lines[-1:]:
            say(("ACLs: " if line is lines[-1] else "") + line)


def provision_bus(ctx: Context, say: Any = None) -> None:
    """Topics of the catalogue (idempotent, drift reported), the SCRAM users and ACLs of the
    circle (topics/acls.py), the schemas under FULL_TRANSITIVE, and a signing key for every city
    and signing service that has none."""
    from services.common.keys import ensure_keys
    from topics import provision

    made = ensure_keys(ctx)
    if say and made:
        say(f"keys     made {len(made)} signing key(s) in {ctx.settings.keys_dir} (`tongcheng keys list`)")
    admin = provision.admin_client(ctx.settings)
    try:
        report = provision.apply(ctx.topics, admin)
        apply_acls(ctx, admin, say)
    finally:
        admin.close()
    registered = register_schemas(ctx)
    if say:
        for line in report.lines():
            say(line)
        say(f"registered {len(registered)} schema subjects (FULL_TRANSITIVE)")
