"""`tongcheng acl diff|apply`: the broker's ACLs against the declaration of topics/acls.py.

`diff` lists the missing bindings (declared, not on the broker) and the extra ones (on the broker
and managed by the declaration, see `acls.managed`, but not declared). `apply` creates the missing
and deletes the extra, so a second `apply` changes nothing. Both use kafka-python's admin ACL API
(DescribeAcls, CreateAcls, DeleteAcls), which Kafka 4.1's StandardAuthorizer serves.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from schemas.errors import TongchengError
from topics import kafka_auth
from topics.acls import Binding, bindings, city_codes, managed, principals
from topics.settings import Settings


class AclError(TongchengError):
    pass


@dataclass
class AclDiff:
    missing: list[Binding] = field(default_factory=list)
    extra: list[Binding] = field(default_factory=list)
    unchanged: int = 0

    @property
    def clean(self) -> bool:
        return not self.missing and not self.extra

    def lines(self, applied: bool = False) -> list[str]:
        plus, minus = ("created", "deleted") if applied else ("missing", "extra")
        out = [f"{plus:8} {b}" for b in self.missing] + [f"{minus:8} {b}" for b in self.extra]
        out.append(f"{len(self.missing)} {plus}, {len(self.extra)} {minus}, {self.unchanged} unchanged")
        return out


def _acl(b: Binding) -> ACL:
    return ACL(
        principal=b.principal,
        host="*",
        operation=ACLOperation[b.operation],
        permission_type=ACLPermissionType.ALLOW,
        resource_pattern=ResourcePattern(ResourceType[b.resource], b.name, ACLResourcePatternType[b.pattern]),
    )


def _binding(acl: ACL) -> Binding | None:
    """The Binding of an ALLOW rule from any host; None for a DENY or host-bound rule (always extra)."""
    p = acl.resource_pattern
    return Binding(acl.principal, p.resource_type.name, p.resource_name, p.pattern_type.name, acl.operation.name)


def current(admin: KafkaAdminClient) -> list[ACL]:
    everything = ACLFilter(
        principal=None,
        host=None,
        operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY),
    )
    acls, _ = admin.describe_acls(everything)
    return list(acls)


def diff(admin: KafkaAdminClient, prefix: str, cities: Iterable[str]) -> tuple[AclDiff, dict[Binding, list[ACL]]]:
    """The drift of one circle's ACLs, and the broker's rules behind each extra binding."""
    cities = list(cities)
    declared = bindings(prefix, cities)
    have: dict[Binding, list[ACL]] = {}
    for acl in current(admin):
        b = _binding(acl)
        if b is None or not managed(b, prefix, cities):
            continue
        if acl.host != "*" or acl.permission_type != ACLPermissionType.ALLOW:
            # not a form the declaration uses: report it under a name that never matches a declared one
            b = Binding(
                b.principal, b.resource, b.name, b.pattern, f"{b.operation}:{acl.permission_type.name}@{acl.host}"
            )
        have.setdefault(b, []).append(acl)
    result = AclDiff(
        missing=sorted(declared - set(have)),
        extra=sorted(set(have) - declared),
        unchanged=len(declared & set(have)),
    )
    return result, have


def apply(admin: KafkaAdminClient, prefix: str, cities: Iterable[str], settle: float = 10.0) -> AclDiff:
    """Create the missing bindings and delete the extra ones; returns what was done. It returns once
    the broker describes the declared state (the authorizer learns a change from the metadata log
    a moment after the controller took it, about half a second on the embedded broker), so a
    client started next is judged by the new rules and a second `apply` finds nothing to do."""
    cities = list(cities)
    result, have = diff(admin, prefix, cities)
    if result.missing:
        created = admin.create_acls([_acl(b) for b in result.missing])
        if created["failed"]:
            raise AclError(f"creating ACLs failed: {created['failed'][:5]}")
    if result.extra:
        filters = [
            ACLFilter(
                principal=acl.principal,
                host=acl.host,
                operation=acl.operation,
                permission_type=acl.permission_type,
                resource_pattern=ResourcePatternFilter(
                    acl.resource_pattern.resource_type,
                    acl.resource_pattern.resource_name,
                    acl.resource_pattern.pattern_type,
                ),
            )
            for b in result.extra
            for acl in have[b]
        ]
        for _filter, _matched, error in admin.delete_acls(filters):
            if error.errno != 0:
                raise AclError(f"deleting ACLs failed: {error}")
    if not result.clean:
        deadline = time.monotonic() + settle
        while not diff(admin, prefix, cities)[0].clean:
            if time.monotonic() > deadline:
                raise AclError(f"the broker still does not describe the declared ACLs {settle:g}s after `apply`")
            time.sleep(0.1)
    return result


# --- SCRAM users ----------------------------------------------------------------------------


def _upsert(admin: KafkaAdminClient, secrets: dict[str, str]) -> None:
    upserts = [UserScramCredentialUpsertion(u, ScramMechanism.SCRAM_SHA_512, s) for u, s in secrets.items()]
    errors = {u: e for u, e in admin.alter_user_scram_credentials(upserts).items() if e}
    if errors:
        raise AclError(f"setting SCRAM credentials failed: {errors}")


def ensure_users(admin: KafkaAdminClient, settings: Settings) -> list[str]:
    """A SCRAM user on the broker for every principal of the circle (admin, the services, the cities)
    that has none yet, its secret from the secrets file (generated there when missing); returns
    the users created. Existing credentials are left as they are (`rotate` changes one)."""
    wanted = principals(settings)
    described = admin.describe_user_scram_credentials(wanted)
    have = {u for u, d in described.items() if d["error"] is None and d["credential_infos"]}
    missing = [u for u in wanted if u not in have]
    if missing:
        secrets = kafka_auth.secret_store(settings).ensure(missing)
        _upsert(admin, {u: secrets[u] for u in missing})
    return missing


def rotate(admin: KafkaAdminClient, settings: Settings, city: str) -> tuple[str, str]:
    """A new secret for a city's user, set on the broker first and then stored; returns (user, secret)."""
    if city not in city_codes(settings):
        raise AclError(f"{city} is not a member city")
    user = kafka_auth.city_principal(city)
    secret = kafka_auth.new_secret()
    _upsert(admin, {user: secret})
    store = kafka_auth.secret_store(settings)
    store.write({**store.read(), user: secret})
    return user, secret
