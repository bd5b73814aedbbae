"""A catalog's content with database ids replaced by node paths: two catalogs
holding the same nodes dump equal, whatever order their ids were given in."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from manifest_broker.catalog.database import engine, locate

# Above this many nodes the per-node search would compare millions of matches.
FULLTEXT_SEARCH_LIMIT = 2_000


def _text(value: Any) -> str:
    """A JSON column as stored: SQLite keeps the text byte for byte (compared as
    is), PostgreSQL's JSONB keeps only the parsed value (compared key-sorted)."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def dump(uri: str) -> dict[str, Any]:
    location = locate(uri)
    eng = engine(location)
    with eng.connect() as conn:
        q = lambda sql: conn.execute(sa.text(sql)).all()  # noqa: E731
        nodes = {r[0]: r for r in q("SELECT id, parent, key, structure_family, metadata, specs FROM nodes")}

        def path(node_id: int) -> str:
            parts = []
            while node_id and node_id in nodes:
                parts.append(nodes[node_id][2])
                node_id = nodes[node_id][1]
            return "/" + "/".join(reversed(parts))

        uri_of = {r[0]: r[1] for r in q("SELECT id, data_uri FROM assets")}
        out = {
            "nodes": sorted((path(i), str(r[3]), _text(r[4]), _text(r[5])) for i, r in nodes.items()),
            "closure": sorted(
                (path(a), path(d), depth) for a, d, depth in q("SELECT ancestor, descendant, depth FROM nodes_closure")
            ),
            "structures": sorted((i, _text(s)) for i, s in q("SELECT id, structure FROM structures")),
            "data_sources": sorted(
                (path(n), sid, mime, _text(p), _text(pr), str(m), str(f))
                for n, sid, mime, p, pr, m, f in q(
                    "SELECT node_id, structure_id, mimetype, parameters, properties, management, structure_family FROM data_sources"
                )
            ),
            "assets": sorted(
                tuple(r) for r in q("SELECT data_uri, is_directory, hash_type, hash_content, size FROM assets")
            ),
            "associations": sorted(
                (path(n), uri_of[a], p, num)
                for n, a, p, num in q(
                    "SELECT d.node_id, x.asset_id, x.parameter, x.num FROM data_source_asset_association x JOIN data_sources d ON d.id = x.data_source_id"
                )
            ),
            "access_tags": sorted(
                (path(n), t)
                for n, t in q(
                    "SELECT a.node_id, t.name FROM node_access_tags_association a JOIN access_tags t ON t.id = a.tag_id"
                )
            ),
            "revisions": sorted(
                (path(n), num, _text(m)) for n, num, m in q("SELECT node_id, revision_number, metadata FROM revisions")
            ),
        }
        if location.dialect == "sqlite":
            out["triggers"] = sorted(tuple(r) for r in q("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"))
            # FTS5 over external content: the index agrees with the nodes table (rank 1
            # makes integrity-check compare with the external content too) ...
            conn.exec_driver_sql("INSERT INTO metadata_fts5(metadata_fts5, rank) VALUES ('integrity-check', 1)")
            # ... and, in catalogs small enough, a search per node finds exactly that node.
            out["fulltext"] = (
                []
                if len(nodes) > FULLTEXT_SEARCH_LIMIT
                else sorted(
                    (
                        path(i),
                        tuple(
                            sorted(
                                path(h[0])
                                for h in conn.execute(
                                    sa.text("SELECT rowid FROM metadata_fts5 WHERE metadata_fts5 MATCH :t"),
                                    {"t": '"' + r[2] + '"'},
                                )
                            )
                        ),
                    )
                    for i, r in nodes.items()
                    if r[2]
                )
            )
        else:
            out["triggers"] = sorted(
                tuple(r) for r in q("SELECT tgname, tgenabled FROM pg_trigger WHERE NOT tgisinternal")
            )
    eng.dispose()
    return out


def integrity_problems(uri: str) -> dict[str, int]:
    """Counts of what is wrong (all zero for a sound catalog): rows that point at nodes,
    data sources or assets that do not exist, closure rows that differ from the
    closure recomputed from nodes.parent, and (SQLite) the database's and the FTS5
    index's own integrity checks."""
    eng = engine(locate(uri))
    with eng.connect() as conn:
        q = lambda sql: conn.execute(sa.text(sql)).scalar()  # noqa: E731
        out = {
            "closure_dangling": q(
                "SELECT count(*) FROM nodes_closure WHERE ancestor NOT IN (SELECT id FROM nodes) OR descendant NOT IN (SELECT id FROM nodes)"
            ),
            "data_sources_dangling": q("SELECT count(*) FROM data_sources WHERE node_id NOT IN (SELECT id FROM nodes)"),
            "associations_dangling": q(
                "SELECT count(*) FROM data_source_asset_association WHERE data_source_id NOT IN (SELECT id FROM data_sources) OR asset_id NOT IN (SELECT id FROM assets)"
            ),
            "assets_unreferenced": q(
                "SELECT count(*) FROM assets WHERE id NOT IN (SELECT asset_id FROM data_source_asset_association)"
            ),
            "revisions_dangling": q("SELECT count(*) FROM revisions WHERE node_id NOT IN (SELECT id FROM nodes)"),
            "tags_dangling": q(
                "SELECT count(*) FROM node_access_tags_association WHERE node_id NOT IN (SELECT id FROM nodes)"
            ),
        }
        nodes = dict(conn.execute(sa.text("SELECT id, parent FROM nodes")).all())
        expected = set()
        for node in nodes:
            ancestor, depth = node, 0
            while ancestor is not None:
                expected.add((ancestor, node, depth))
                ancestor, depth = nodes.get(ancestor), depth + 1
        actual = set(conn.execute(sa.text("SELECT ancestor, descendant, depth FROM nodes_closure")).all())
        out["closure_wrong"] = len(expected ^ actual)
        if conn.dialect.name == "sqlite":
            out["integrity_check"] = int(conn.exec_driver_sql("PRAGMA integrity_check").scalar() != "ok")
            # raises "database disk image is malformed" when the index and the nodes disagree
            conn.exec_driver_sql("INSERT INTO metadata_fts5(metadata_fts5, rank) VALUES ('integrity-check', 1)")
    eng.dispose()
    return out
