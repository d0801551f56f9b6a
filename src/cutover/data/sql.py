"""The SQL both sides run (N5, N7): one select per table and one content checksum.

The checksum is order-independent: the sum, as numeric, of the first 64 bits of the md5 of
each row's canonical text, `ROW(c1, c2, ...)::text`. Row text depends on session settings
(time zone, date style, float digits), so those are fixed in `SESSION` and shipped in the
manifest together with the SQL itself: the receiver runs the very same statement over the
table it loaded and must get the same count and checksum.
"""

from __future__ import annotations

SESSION = {
    "TimeZone": "UTC",
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "postgres",
    "extra_float_digits": "3",
    "bytea_output": "hex",
}


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def session_sql(settings: dict[str, str] | None = None) -> list[str]:
    return [f"SET {k} = {literal(v)}" for k, v in (settings or SESSION).items()]


def column_list(columns: list[str]) -> str:
    return ", ".join(ident(c) for c in columns)


def where_sql(*predicates: str | None) -> str:
    parts = [f"({p})" for p in predicates if p and p.strip()]
    return " WHERE " + " AND ".join(parts) if parts else ""


def select_sql(table: str, columns: list[str], *predicates: str | None) -> str:
    return f"SELECT {column_list(columns)} FROM {ident(table)}{where_sql(*predicates)}"


def checksum_sql(table: str, columns: list[str], *predicates: str | None) -> str:
    row = f"ROW({column_list(columns)})::text"
    return (f"SELECT count(*) AS rows, coalesce(sum(('x' || left(md5({row}), 16))::bit(64)::bigint), 0)"
            f"::text AS checksum FROM {ident(table)}{where_sql(*predicates)}")


# A fragment (a row filter or quality rule) is one boolean expression. These markers can end
# it early or hide what follows it once fragments are joined into one statement, so a
# fragment that holds one is refused outright, even inside a string literal (write such a
# rule another way, e.g. with chr(59) for ';').
FORBIDDEN = {"--": "a comment marker (--)", "/*": "a comment marker (/*)", "*/": "a comment marker (*/)",
             ";": "a statement separator (;)"}


def fragment_problem(text: object) -> str | None:
    """Why an inventory SQL fragment cannot be used, or None. Quality rules come from the
    receiving organisation (N5): untrusted text that is joined into our statements."""
    if not isinstance(text, str) or not text.strip():
        return "is not a non-empty SQL expression"
    found = forbidden_in(text)
    if found:
        return "holds " + " and ".join(found) + "; a filter or rule is one expression"
    return None


def forbidden_in(text: str) -> list[str]:
    """The FORBIDDEN markers text holds, said as an operator reads them (also the rule for
    the inventory's smoke statements: one statement, nothing hidden, cutover.plan.smoke_checks)."""
    return [what for marker, what in FORBIDDEN.items() if marker in text]


def passes(rules: list[dict]) -> str | None:
    """One predicate that is true when a row passes every rule (NULL counts as failing)."""
    if not rules:
        return None
    return " AND ".join(f"coalesce(({r['check']}), false)" for r in rules)
