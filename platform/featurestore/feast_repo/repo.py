"""The Feast repository for the ``feast`` CLI: the objects OneRing applies, from views.yml.

OneRing applies them itself (the ``features/<view>`` assets, with paths relative to
``<state>/feast``); this file lets the CLI read and inspect the same repository, e.g.::

    ONERING_STATE_DIR=.onering ONERING_FEAST_DIR=.onering/feast \
        feast -c platform/featurestore/feast_repo feature-views list

The offline files are the lake's (``ONERING_LAKE_URL``, else ``<ONERING_STATE_DIR>/lake``),
named by absolute address here since the CLI's repository folder is this one.
"""

import os
from pathlib import Path

from onering_assets.features.objects import repo_objects
from onering_assets.features.views import load_views
from onering_assets.resources.lake import LakeResource

_views = load_views()
_state = Path(os.environ.get("ONERING_STATE_DIR", ".onering")).expanduser().resolve()
_lake_url = os.environ.get("ONERING_LAKE_URL") or (_state / "lake").as_uri()
_paths = {
    view.name: LakeResource(url=_lake_url).uri("features", view.name) + "/data.parquet"
    for view in _views.views
}
_paths = {name: path.removeprefix("file://") for name, path in _paths.items()}

for _obj in repo_objects(_views, _paths, os.environ.get("ONERING_S3_ENDPOINT_URL")):
    globals()[_obj.name] = _obj
