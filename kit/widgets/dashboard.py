"""Dashboard: several views side by side with their selections linked."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ipywidgets

from ._base import KitWidget, with_static_fallback
from ._html import grid_columns, html_page
from ._options import refuse_unknown

__all__ = ["Dashboard"]

SHARED = ("layer", "head", "token", "step")


def _domain_text(domain: Any) -> str:
    """A link domain in words: ``0..n-1`` for a bound, the steps for a tuple of recorded steps."""
    if isinstance(domain, tuple):
        return f"steps {domain[0]}..{domain[-1]} ({len(domain)} recorded)"
    return f"0..{domain - 1}"


class Dashboard(ipywidgets.GridBox):
    """Lay out views in a grid and link their selections.

    ``Dashboard(lens, heatmap, viewer, columns=2)``: for each trait in ``link`` (default
    ``("layer", "head", "token", "step")``; ``step``: the training step of TrainingScrubbers that
    recorded the same steps), every view that means the same thing by it (its ``_links``)
    and knows its range is joined with ``ipywidgets.jslink``: a click in one view moves the
    others in the browser, and Python sees every view's trait change (``view.observe(...)``).
    Views to be linked must agree on the range of a linked trait (same model, same prompt);
    otherwise a ``ValueError`` names them. ``to_html()`` writes one page in which the links
    keep working with no kernel and no network.
    """

    def __init__(self, *views: KitWidget, link: Sequence[str] = SHARED, columns: int = 2, **unknown: Any) -> None:
        refuse_unknown(Dashboard, unknown)
        if len(views) == 1 and isinstance(views[0], (list, tuple)):
            views = tuple(views[0])
        if not views:
            raise ValueError("Dashboard needs at least one view, e.g. Dashboard(lens, heatmap)")
        for v in views:
            if not isinstance(v, KitWidget):
                raise TypeError(
                    f"Dashboard takes kit widgets (ResidualLens, PatchingHeatmap, ...); got {type(v).__name__}"
                )
        if len({id(v) for v in views}) != len(views):
            raise ValueError("a view appears twice in the Dashboard; make a second view instead")
        unknown_traits = [t for t in link if t not in SHARED]
        if unknown_traits:
            raise ValueError(f"link takes some of {list(SHARED)}; got {unknown_traits}")
        if not isinstance(columns, int) or columns < 1:
            raise ValueError(f"columns must be a positive integer; got {columns!r}")
        self._views = list(views)
        self._columns = columns
        self._pairs = self._plan_links(self._views, list(link))
        self._jslinks = [ipywidgets.jslink((self._views[i], t), (self._views[j], t)) for i, t, j in self._pairs]
        super().__init__(
            children=self._views,
            # at most `columns` views per row; fewer (down to one) when the output area is narrow
            layout=ipywidgets.Layout(
                grid_template_columns=grid_columns(columns), grid_gap="12px 16px", justify_items="flex-start", width="100%"
            ),
        )

    @staticmethod
    def _plan_links(views: list[KitWidget], traits: list[str]) -> list[tuple[int, str, int]]:
        """``(i, trait, j)`` pairs: each view sharing a trait is linked to the first one that has it."""
        pairs = []
        for trait in traits:
            members = [i for i, v in enumerate(views) if trait in v._links and v._link_domain(trait) is not None]
            if len(members) < 2:
                continue
            ranges = {i: views[i]._link_domain(trait) for i in members}
            if len(set(ranges.values())) > 1:
                detail = ", ".join(f"{type(views[i]).__name__} #{i}: {_domain_text(n)}" for i, n in ranges.items())
                raise ValueError(
                    f"cannot link {trait!r}: the views disagree on its range ({detail}). Show views of the same "
                    f"model and prompt, or leave it out: Dashboard(..., link={[t for t in traits if t != trait]})"
                )
            first = members[0]
            for i in members[1:]:
                pairs.append((first, trait, i))
            for i in members[1:]:  # start in agreement
                setattr(views[i], trait, getattr(views[first], trait))
        return pairs

    @property
    def views(self) -> list[KitWidget]:
        return list(self._views)

    @property
    def links(self) -> list[tuple[str, str, str]]:
        """``(view, trait, view)`` for every link, views named ``Class#index``."""
        name = lambda i: f"{type(self._views[i]).__name__}#{i}"  # noqa: E731
        return [(name(i), t, name(j)) for i, t, j in self._pairs]

    def to_html(self, path: str | Path | None = None, *, max_bytes: int | None = None) -> str:
        """One self-contained page with every view, linked as in the notebook, that works offline
        (``max_bytes``: the page's data budget, as in :meth:`KitWidget.to_html`)."""
        return html_page(self._views, path=path, links=self._pairs, columns=self._columns, max_bytes=max_bytes)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The live grid, plus a ``text/html`` fallback for static renderers (see `_fallback`)."""
        return with_static_fallback(self, super()._repr_mimebundle_(**kwargs))

    def __repr__(self) -> str:
        views = ", ".join(type(v).__name__ for v in self._views)
        traits = sorted({t for _, t, _ in self._pairs})
        return f"Dashboard({views}; linked: {', '.join(traits) or 'nothing'})"
