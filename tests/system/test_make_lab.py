"""`make lab` — the learner's one command — serves JupyterLab on 127.0.0.1 with the notebooks;
every notebook, run by nbmake with every code cell twice in a row (a learner runs cells again),
shows no error in JupyterLab in a real browser; and a learner's Run All, live, in the browser."""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest
from nbformat.sign import NotebookNotary
from nbmake.nb_run import NotebookRun

from restate_tutorial import views
from restate_tutorial.lab import Lab, LabError, wait_until
from restate_tutorial.lab.binaries import PROJECT_DIR
from restate_tutorial.scenarios import SEED_BOOKING

from .browser import CHROMIUM, CHROMIUM_ARGS, NO_CHROMIUM, TOKEN, JupyterLabServer, stop

NOTEBOOKS = sorted(p.name for p in (PROJECT_DIR / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SCREENSHOTS = PROJECT_DIR / "test-screenshots"


@pytest.fixture(scope="session")
def jupyterlab_server(request: pytest.FixtureRequest) -> Iterator[JupyterLabServer]:
    """The run's JupyterLab: the controller's under `make test` (test workers), else started
    here."""
    shared = getattr(request.config, "workerinput", {}).get("jupyterlab_server")
    if shared:
        stack = JupyterLabServer(**shared)
        stack.wait_until_up()
        yield stack
        return
    stack, processes, home = JupyterLabServer.start()
    try:
        stack.wait_until_up()
        yield stack
    finally:
        stop(processes, home)


@pytest.fixture(scope="session")
def jupyterlab(jupyterlab_server: JupyterLabServer) -> str:
    """The URL of JupyterLab, started by `make lab` on a free port."""
    return jupyterlab_server.jupyterlab


def _contents(url: str) -> list[str]:
    try:
        answer = httpx.get(f"{url}/api/contents", headers={"Authorization": f"token {TOKEN}"},
                           timeout=2)
    except httpx.HTTPError:
        return []
    return [item["name"] for item in answer.json()["content"]] if answer.is_success else []


def test_make_lab_serves_the_notebooks_on_loopback(jupyterlab: str) -> None:
    assert set(NOTEBOOKS) <= set(_contents(jupyterlab))
    # No "get notified about Jupyter news?" pop-up, no "Select Kernel" dialog.
    def defaults(plugin: str) -> dict[str, Any]:
        return httpx.get(f"{jupyterlab}/lab/api/settings/{plugin}",
                         headers={"Authorization": f"token {TOKEN}"}, timeout=5
                         ).json()["schema"]["properties"]  # overrides.json sets the defaults

    notification = defaults("@jupyterlab/apputils-extension:notification")
    assert notification["fetchNews"]["default"] == "false", notification["fetchNews"]
    assert notification["checkForUpdates"]["default"] is False
    tracker = defaults("@jupyterlab/notebook-extension:tracker")
    assert tracker["autoStartDefaultKernel"]["default"] is True


class BrowserThread:
    """The run's Chromium, driven from a thread of its own: Playwright's sync API keeps an
    event loop running in the thread that drives it; in the tests' own thread it would break
    asyncio.run in the worker's later tests."""

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="browser")
        self._playwright, self._browser = self._thread.submit(self._launch).result()

    @staticmethod
    def _launch() -> tuple[Any, Any]:
        from playwright.sync_api import sync_playwright

        playwright = sync_playwright().start()
        return playwright, playwright.chromium.launch(executable_path=CHROMIUM,
                                                      args=CHROMIUM_ARGS)

    def run(self, action: Callable[..., Any], *args: Any) -> Any:
        """``action(browser, *args)`` in the browser's thread: its result, or its exception."""
        return self._thread.submit(action, self._browser, *args).result()

    def close(self) -> None:
        self._thread.submit(lambda: (self._browser.close(), self._playwright.stop())).result()
        self._thread.shutdown()


@pytest.fixture(scope="session")
def browser() -> Iterator[BrowserThread]:
    """Chromium for the whole session of a test worker: a new one costs ~11 s of CPU to load
    JupyterLab, a page after the first ~1 s."""
    if not Path(CHROMIUM).exists():
        pytest.fail(NO_CHROMIUM, pytrace=False)
    chromium = BrowserThread()
    yield chromium
    chromium.close()


ERRORS = (".jp-OutputArea-output[data-mime-type$='error'],"
          " .jp-OutputArea-output[data-mime-type$='stderr']")
# Every code cell shows an execution count — or the run stopped at an error (JupyterLab
# renders a traceback as stderr: both selectors count).
ALL_RAN = f"""() => {{
    const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
        .map(e => e.textContent.trim());
    const failed = document.querySelector("{ERRORS}");
    return !prompts.includes('[*]:') &&
        (failed !== null || prompts.every(t => /^\\[\\d+\\]:$/.test(t)));
}}"""


def _doubled(notebook: str) -> str:
    """A copy of the notebook beside it with every code cell twice in a row, the copy right
    after the cell; returns its name."""
    source = nbformat.read(PROJECT_DIR / "notebooks" / notebook, as_version=4)
    cells = []
    for cell in source.cells:
        cells.append(cell)
        if cell.cell_type == "code":
            again = copy.deepcopy(cell)
            again.id = f"{cell.id}-again"
            cells.append(again)
    source.cells = cells
    name = f"twice-{notebook}"  # git-ignored
    nbformat.write(source, PROJECT_DIR / "notebooks" / name)
    return name


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_every_notebook_runs_under_nbmake_twice_per_cell_and_shows_no_error_in_a_browser(
        jupyterlab: str, browser: BrowserThread, notebook: str) -> None:
    """One run of each notebook serves three checks: nbmake's runner (what `pytest --nbmake`
    does: a fresh kernel, top to bottom, a failing cell fails the test) runs it with every code
    cell twice in a row (a learner runs cells again); then JupyterLab, in a real browser, shows
    what that run printed, as a learner's screen shows it: no error, no stderr."""
    doubled = _doubled(notebook)
    path = PROJECT_DIR / "notebooks" / doubled
    try:
        ran = _run_with_nbmake(path)
        # Signed, as a notebook run in the learner's own JupyterLab is trusted: its HTML shows.
        NotebookNotary().sign(ran.nb)
        nbformat.write(ran.nb, path)
        if ran.error is not None:
            pytest.fail(f"{notebook} (every code cell twice), cell {ran.error.failing_cell_index}:"
                        f" {ran.error.summary}\n{ran.error.trace}", pytrace=False)
        browser.run(_check_the_screen, jupyterlab, doubled, notebook)
    finally:
        _end_kernels(jupyterlab, doubled)
        path.unlink(missing_ok=True)


def _run_with_nbmake(path: Path) -> Any:
    """nbmake's run of the notebook. A kernel that dies or stays silent before its first reply
    (no cell has run yet) is started once more: with six test workers starting kernels at once,
    two can pick the same free TCP port (jupyter_client checks a port is free, then the kernel
    binds it), and a kernel can take longer than nbclient's 60 s to start on a busy machine."""
    try:
        return NotebookRun(path, default_timeout=300).execute()
    except RuntimeError as error:
        if not any(before_any_cell in str(error) for before_any_cell in (
                "Kernel died before replying to kernel_info", "Kernel didn't respond")):
            raise
        return NotebookRun(path, default_timeout=300).execute()


def _check_the_screen(browser: Any, jupyterlab: str, doubled: str, notebook: str) -> None:
    page = _open(browser, jupyterlab, doubled)
    try:
        # JupyterLab renders 01's Mermaid sequence diagram as an <img> of SVG (once its renderer
        # has loaded); 02's timeline is a PNG.
        image = {"01_": "svg+xml", "02_": "png"}.get(notebook[:3])
        if image:
            page.wait_for_selector(f".jp-OutputArea-output img[src^='data:image/{image}']",
                                   timeout=60_000)
        _assert_no_error_on_screen(page, notebook)
        _assert_no_word_split(page, notebook)
        _assert_solutions_collapsed(page, doubled)
    finally:
        page.close()


def _assert_no_word_split(page: Any, notebook: str) -> None:
    split = page.evaluate(SPLIT_WORDS)
    if split:
        page.locator("[data-split-word]").first.scroll_into_view_if_needed()
        shot = _screenshot(page, f"{Path(notebook).stem}-split.png")
        pytest.fail(f"{notebook} shows words broken across two lines: {split} (screenshot: "
                    f"{shot})")


def _assert_solutions_collapsed(page: Any, notebook: str) -> None:
    """Every solution cell shows neither its code nor its output until the learner opens it."""
    cells = nbformat.read(PROJECT_DIR / "notebooks" / notebook, as_version=4).cells
    solutions = sum("exercise-solution" in c.metadata.get("tags", []) for c in cells)
    for hidden in (".jp-InputPlaceholder", ".jp-OutputPlaceholder"):
        shown = page.locator(f".jp-Notebook {hidden}").count()
        assert shown == solutions, f"{notebook}: {shown} {hidden}, {solutions} solution cells"


def _sessions(jupyterlab: str, notebook: str) -> list[dict[str, Any]]:
    """JupyterLab's sessions of ``notebook``. (A page closed leaves its session under a random
    path, to be reused by nobody: its name still names the notebook.)"""
    return [session for session in httpx.get(
        f"{jupyterlab}/api/sessions", headers={"Authorization": f"token {TOKEN}"}, timeout=10
    ).json() if session["name"] == notebook or session["path"] == notebook]


def _end_kernels(jupyterlab: str, notebook: str) -> None:
    """Shut down the kernel JupyterLab started on opening ``notebook`` (it would idle on)."""
    for session in _sessions(jupyterlab, notebook):
        httpx.delete(f"{jupyterlab}/api/sessions/{session['id']}",
                     headers={"Authorization": f"token {TOKEN}"}, timeout=30)


def test_the_screen_check_sees_an_error_that_a_run_left(jupyterlab: str,
                                                        browser: BrowserThread) -> None:
    """What the check above reads: a notebook's saved outputs, as JupyterLab shows them — an
    error or a line on stderr is seen; a plain print is not."""
    name = f"twice-screen-check-{uuid.uuid4().hex[:6]}.ipynb"  # git-ignored, as the copies
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("print('fine')", outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="fine\n")]),
        nbformat.v4.new_code_cell("warn()", outputs=[
            nbformat.v4.new_output("stream", name="stderr", text="UserWarning: oops\n")])])
    path = PROJECT_DIR / "notebooks" / name
    nbformat.write(notebook, path)
    try:
        with pytest.raises(pytest.fail.Exception, match="1 error/stderr output.*oops"):
            browser.run(_check_the_screen, jupyterlab, name, name)
    finally:
        _end_kernels(jupyterlab, name)
        path.unlink(missing_ok=True)


def test_outputs_wrap_between_words_and_the_check_sees_a_word_split(
        jupyterlab: str, browser: BrowserThread) -> None:
    """A long line of stdout and a table wrap between words on the learner's screen (make lab's
    custom CSS); a word split across two lines (forced here in HTML) is seen."""
    name = f"twice-wrap-check-{uuid.uuid4().hex[:6]}.ipynb"  # git-ignored, as the copies
    words = " ".join(f"payment{n} reason" for n in range(400))
    cell = nbformat.v4.new_code_cell("print(words)", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text=words + "\n"),
        nbformat.v4.new_output("display_data", data={"text/html": (
            f"<table><tr><td>{words}</td><td>{words}</td></tr></table>")})])
    notebook = nbformat.v4.new_notebook(cells=[cell])
    NotebookNotary().sign(notebook)
    path = PROJECT_DIR / "notebooks" / name
    nbformat.write(notebook, path)
    try:
        browser.run(_check_the_screen, jupyterlab, name, name)
        cell.outputs.append(nbformat.v4.new_output("display_data", data={"text/html": (
            f"<p style='word-break: break-all'>{words}</p>")}))
        NotebookNotary().sign(notebook)
        nbformat.write(notebook, path)
        _end_kernels(jupyterlab, name)
        with pytest.raises(pytest.fail.Exception, match="words broken across two lines"):
            browser.run(_check_the_screen, jupyterlab, name, name)
    finally:
        _end_kernels(jupyterlab, name)
        path.unlink(missing_ok=True)


def _open(browser: Any, jupyterlab: str, notebook: str) -> Any:
    """A page with ``notebook`` open in JupyterLab, every cell and output on it."""
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(f"{jupyterlab}/lab/workspaces/{Path(notebook).stem}/tree/{notebook}?token={TOKEN}")
    source = nbformat.read(PROJECT_DIR / "notebooks" / notebook, as_version=4)
    # On a busy machine JupyterLab is still adding cells when the page looks ready.
    cells = sum(c.cell_type == "code" for c in source.cells)
    outputs = sum(_shown(c.outputs) for c in source.cells if c.cell_type == "code"
                  and not c.metadata.get("jupyter", {}).get("outputs_hidden"))  # collapsed
    page.wait_for_function(
        f"() => document.querySelectorAll('.jp-Notebook .jp-CodeCell').length === {cells} &&"
        f" document.querySelectorAll('.jp-Notebook .jp-OutputArea-output').length >= {outputs}",
        timeout=90_000, polling=250)
    return page


def _shown(outputs: list[Any]) -> int:
    """How many outputs JupyterLab shows for these: consecutive stream outputs of one name
    (stdout, stderr) show as one."""
    shown, last_stream = 0, None
    for output in outputs:
        stream = output.get("name") if output.output_type == "stream" else None
        shown += stream is None or stream != last_stream
        last_stream = stream
    return shown


def test_a_learner_runs_a_notebook_in_jupyterlab(jupyterlab: str,
                                                browser: BrowserThread) -> None:
    """The learner's own path, live: open notebook 00, choose Run ▸ Run All Cells; the page
    shows no error, and the lab is still up afterwards — the Restate UI in its ready line
    answers."""
    try:
        browser.run(_run_all_as_a_learner, jupyterlab, NOTEBOOKS[0])
    finally:
        _end_kernels(jupyterlab, NOTEBOOKS[0])


def _run_all_as_a_learner(browser: Any, jupyterlab: str, notebook: str) -> None:
    page = _open_and_run_all(browser, jupyterlab, notebook)
    try:
        if not _the_kernel_got_the_cells(page, jupyterlab, notebook):
            # JupyterLab's page lost its kernel's connection as it opened (seen on a loaded
            # host: the session's first kernel replaced by a second, the page's socket to the
            # first never opened): the cells wait at [*] and the kernel sits idle. A learner
            # would open the notebook again; so does this test — once.
            shot = _screenshot(page, f"{Path(notebook).stem}-lost-kernel.png")
            print(f"{notebook}: the page lost its kernel; opened again (screenshot: {shot})")
            page.close()
            page = _open_and_run_all(browser, jupyterlab, notebook)
        page.wait_for_function(ALL_RAN, timeout=600_000, polling=500)
        _assert_no_error_on_screen(page, notebook)
        ready = page.locator(".jp-OutputArea-output", has_text="Restate lab ready").first
        ui = re.search(r"UI (http://127\.0\.0\.1:\d+/ui/)", ready.inner_text())
        assert ui, ready.inner_text()
        assert httpx.get(ui[1], timeout=10).status_code == 200, f"{ui[1]} after Run All"
    finally:
        page.close()


def test_the_restate_ui_shows_the_journal_of_the_original_examples_saga(
        lab: Lab, browser: BrowserThread) -> None:
    """The journal view's Restate UI link (notebook 01 shows it for the original example's
    saga) opens the UI's page of that invocation: the calls, the failed charge and the undo,
    in order."""
    invocation = lab.ingress.send("BookingWorkflow", "Run", SEED_BOOKING,
                                  key=f"ui-{uuid.uuid4().hex[:8]}")
    lab.admin.wait_until_ended(invocation)
    journal = views.journal(lab.admin, invocation)
    assert f"href='{journal.link}'" in journal._repr_html_()
    browser.run(_assert_the_ui_shows_the_seed_saga, journal.link)


def _open_and_run_all(browser: Any, jupyterlab: str, notebook: str) -> Any:
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(f"{jupyterlab}/lab/workspaces/live/tree/{notebook}?token={TOKEN}")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=90_000)
    _run_all(page, notebook)
    return page


# The first code cell has run.
FIRST_RAN = """() => /^\\[\\d+\\]:$/.test(
    document.querySelector('.jp-CodeCell .jp-InputPrompt').textContent.trim())"""


def _the_kernel_got_the_cells(page: Any, jupyterlab: str, notebook: str) -> bool:
    """True once the first cell has run, or while the notebook's kernel is busy (running it,
    however long it takes); False if neither within 90 s: the kernel is idle, the cells wait
    for it at [*] — they never reached it."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(FIRST_RAN, timeout=90_000, polling=500)
        return True
    except PlaywrightTimeout:
        return any(session["kernel"]["execution_state"] == "busy"
                   for session in _sessions(jupyterlab, notebook))


# Words (runs of letters and digits, up to 24 long) that an output breaks across two lines:
# "paym" at the end of one line, "ent" at the start of the next. A longer run without spaces
# (an invocation id, a ciphertext) may break when it alone is wider than its column.
SPLIT_WORDS = """() => {
    const split = [];
    for (const output of document.querySelectorAll('.jp-OutputArea-output')) {
        const walker = document.createTreeWalker(output, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            const whole = document.createRange();  // a text on one line splits no word
            whole.selectNodeContents(node);
            const lines = new Set([...whole.getClientRects()].filter(r => r.width > 0)
                .map(r => Math.round(r.top)));
            if (lines.size < 2) continue;
            for (const word of node.textContent.matchAll(/[\\p{L}\\p{N}]+/gu)) {
                if (word[0].length < 2 || word[0].length > 24) continue;
                // A run without spaces longer than that (a ciphertext, a URL) may break too.
                const text = node.textContent;
                let start = word.index, end = word.index + word[0].length;
                while (start > 0 && /\\S/.test(text[start - 1])) start--;
                while (end < text.length && /\\S/.test(text[end])) end++;
                if (end - start > 24) continue;
                const range = document.createRange();
                range.setStart(node, word.index);
                range.setEnd(node, word.index + word[0].length);
                const tops = new Set([...range.getClientRects()].filter(r => r.width > 0)
                    .map(r => Math.round(r.top)));
                if (tops.size > 1) {
                    split.push(text.slice(Math.max(0, word.index - 20), word.index + 30));
                    output.setAttribute('data-split-word', word[0]);
                }
                if (split.length >= 5) return split;
            }
        }
    }
    return split;
}"""
# A cell has started running (or has run).
STARTED = """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
    .some(e => /^\\[(\\*|\\d+)\\]:$/.test(e.textContent.trim()))"""


def _run_all(page: Any, notebook: str) -> None:
    """Choose Run ▸ Run All Cells, as a learner does. On a busy machine a menu click can land
    before the page takes it: try again until a cell runs."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    # Every code cell on the page first: on a busy machine JupyterLab is still adding them when
    # the notebook says idle, and "the last cell" would be one in the middle.
    cells = sum(c.cell_type == "code" for c in nbformat.read(
        PROJECT_DIR / "notebooks" / notebook, as_version=4).cells)
    page.wait_for_function(f"() => document.querySelectorAll('.jp-Notebook .jp-CodeCell')"
                           f".length === {cells}", timeout=90_000, polling=250)
    for _ in range(3):
        page.locator(".jp-Notebook .jp-CodeCell").last.click()
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:
            page.wait_for_function(STARTED, timeout=20_000, polling=250)
            return
        except PlaywrightTimeout:  # the click did not take
            page.keyboard.press("Escape")
    _screenshot(page, f"{Path(notebook).stem}-not-started.png")
    pytest.fail(f"{notebook}: no cell started after Run All Cells, three times")


def _assert_no_error_on_screen(page: Any, notebook: str) -> None:
    errors = page.locator(ERRORS)
    if errors.count():
        errors.first.scroll_into_view_if_needed()
        shot = _screenshot(page, f"{Path(notebook).stem}.png")
        pytest.fail(f"{notebook} shows {errors.count()} error/stderr output(s); the first: "
                    f"{errors.first.inner_text()[:1500]!r} (screenshot: {shot})")


def _assert_the_ui_shows_the_seed_saga(browser: Any, link: str) -> None:
    ui = browser.new_page(viewport={"width": 1440, "height": 900})
    try:
        _open_until_shown(ui, link, "throws")
        expected = [r"call\(Flights\)\.Reserve", r"call\(CarRentals\)\.Reserve",
                    r'run\("charge"\)→Thispaymentshouldneverbeaccepted', r'run\("refund"\)',
                    r"call\(CarRentals\)\.Cancel", r"call\(Flights\)\.Cancel"]

        def listed() -> bool:  # the entries' values fill in after the list ("→ Result" first)
            return bool(re.search(".*".join(expected), re.sub(r"\s+", "", ui.inner_text("body"))))

        try:
            wait_until(listed, 30, "the journal's values on the Restate UI's page")
        except LabError:
            pass
        text = re.sub(r"\s+", "", ui.inner_text("body"))
        if not re.search(".*".join(expected), text):
            _screenshot(ui, "01_restate_ui.png")
            pytest.fail(f"The Restate UI's page of the saga ({link}) does not list its journal "
                        f"in order: {text[:2000]!r}")
    finally:
        ui.close()


def _screenshot(page: Any, name: str) -> str:
    """Save a screenshot for the failure message, at best: a page too busy to paint within 15 s
    (seen under a loaded host) must not turn into a failure of its own."""
    SCREENSHOTS.mkdir(exist_ok=True)
    try:
        page.screenshot(path=str(SCREENSHOTS / name), timeout=15_000)
        return str(SCREENSHOTS / name)
    except Exception as error:  # Playwright's TimeoutError or a closed page
        return f"none: {type(error).__name__}"


def _open_until_shown(page: Any, url: str, text: str) -> None:
    """Open a Restate UI page until it shows `text`. The UI is a single-page app that asks the
    admin API's query engine for the journal; on a loaded machine its first load can stall, so
    load it again, twice at most, before failing (with screenshots). (A run on a heavily loaded
    host: the page showed it a moment after the second 60 s wait had ended.)"""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(3):
        page.goto(url)
        try:
            page.get_by_text(text).first.wait_for(timeout=90_000)
            return
        except PlaywrightTimeout:
            _screenshot(page, f"restate-ui-load-{attempt}.png")
    pytest.fail(f"The Restate UI's page {url} did not show {text!r} in three loads of 90 s "
                f"(screenshots in {SCREENSHOTS})")
