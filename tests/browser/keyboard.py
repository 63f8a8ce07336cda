"""Walking a page with the Tab key, as someone without a mouse does, and looking at where
the focus lands each time: which control it is, and whether the focus can be seen."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from playwright.sync_api import Page

FOCUS_STATE = """(wanted) => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const box = el.getBoundingClientRect();
  const where = el.getAttribute("href") || el.getAttribute("name") || "";
  const text = (el.textContent || "").trim().slice(0, 40);
  return {
    label: `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""} ${where} ${text}`.trim(),
    matched: wanted.filter((selector) => el.matches(selector)),
    // A date field's last Tab stop is its calendar button, inside the browser's own shadow
    // tree: the field is then active but not :focus, and the browser rings the button itself.
    pickerButton: el.matches('input[type="date"], input[type="datetime-local"]')
      && !el.matches(":focus"),
    focusVisible: el.matches(":focus-visible"),
    outlined: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0,
    onScreen: box.width > 0 && box.height > 0 && box.right > 0 && box.bottom > 0
      && box.left < window.innerWidth && box.top < window.innerHeight,
  };
}"""


@dataclass
class TabWalk:
    """Where the focus went, in order, and the stops where it could not be seen."""

    stops: list[str] = field(default_factory=list)
    reached: set[str] = field(default_factory=set)
    unseen: list[str] = field(default_factory=list)

    def first(self) -> str:
        return self.stops[0] if self.stops else ""


def focus_state(page: Page, wanted: Sequence[str]) -> dict[str, Any] | None:
    state: dict[str, Any] | None = page.evaluate(FOCUS_STATE, list(wanted))
    return state


def tab_until(page: Page, wanted: Sequence[str], *, limit: int = 120) -> TabWalk:
    """Press Tab from where the focus is until every selector in ``wanted`` has had the
    focus (or ``limit`` presses); each stop must show a visible focus ring, on screen."""
    walk = TabWalk()
    for _ in range(limit):
        page.keyboard.press("Tab")
        state = focus_state(page, wanted)
        if state is None:
            continue
        walk.stops.append(state["label"])
        walk.reached.update(state["matched"])
        ringed = state["pickerButton"] or (state["focusVisible"] and state["outlined"])
        if not (ringed and state["onScreen"]):
            walk.unseen.append(state["label"])
        if walk.reached >= set(wanted):
            break
    return walk


def tab_to(page: Page, selector: str, *, limit: int = 120) -> None:
    """Move the focus to ``selector`` with the Tab key only."""
    walk = tab_until(page, [selector], limit=limit)
    assert selector in walk.reached, f"Tab never reached {selector}: {walk.stops}"
