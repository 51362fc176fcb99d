"""`matsearch chat` offline, driven through a terminal (pexpect) as a user would: a search, quit, restart, the
follow-ups ('what did you find last time?', 'show the best one', 'run MD on the best one at 600 K') answered from
the thread's saved state and memory, MD as sentences with units, one progress bar, no library banners."""

from __future__ import annotations

import re
import sys
import time

import pytest

from tests.conftest import ROOT, server_env

pexpect = pytest.importorskip("pexpect")

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[()][A-Z0-9]")
PROMPT = "you>"
ID = re.compile(r"\bs-[0-9a-f]{16}\b")
BANNERS = ("Loading weights", "Warning", "UserWarning", "CHGNet v", "it/s]", "Traceback")


def clean(text: str) -> str:
    """Terminal output without colour and cursor codes, carriage returns as line ends."""
    return ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")


def kept_lines(raw: str) -> list[str]:
    """The lines that stay on the screen: what each line shows after its last carriage return (a bar redrawn in
    place leaves nothing behind)."""
    return [ANSI.sub("", line.split("\r")[-1]).strip() for line in raw.split("\r\n")]


def start_chat(env: dict[str, str]) -> tuple[pexpect.spawn, str]:
    child = pexpect.spawn(
        sys.executable, ["-m", "agent.cli", "chat"], cwd=str(ROOT), env=env, encoding="utf-8",
        dimensions=(50, 120), timeout=120,
    )
    child.expect(PROMPT)
    return child, clean(child.before)


def ask(child: pexpect.spawn, message: str, timeout: float) -> tuple[str, str]:
    """Send one message; (the reply after the echoed line, clean and with wrapped lines joined by single spaces,
    the raw text the terminal got)."""
    child.sendline(message)
    child.expect(PROMPT, timeout=timeout)
    raw = child.before
    text = " ".join(clean(raw).split())
    return text.split(message, 1)[-1], raw


def quit_chat(child: pexpect.spawn) -> None:
    child.sendline("exit")
    child.expect(pexpect.EOF, timeout=60)
    child.close()
    assert child.exitstatus == 0, child.before


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_chat_follow_ups_survive_a_restart(tmp_path):
    workspace = tmp_path / "workspace"
    env = server_env(workspace)
    env.pop("OPENAI_BASE_URL", None)
    env["MATSEARCH_LLM_BASE_URL"] = ""  # no LLM: the offline planner answers
    env["OMP_NUM_THREADS"] = "1"
    env["TERM"] = "xterm-256color"
    transcript = []
    began = time.time()

    child, banner = start_chat(env)
    transcript.append(banner)
    assert "offline planner" in banner
    search, raw = ask(child, "a stable rocksalt oxide with Mg", timeout=180)
    transcript.append(search)
    ids = ID.findall(search)
    assert ids, search
    assert "MgO" in search and "E_hull" in search and "eV/atom" in search
    # one bar updated in place and gone at the end: no progress report stays behind as a line of its own
    assert "relaxing" in clean(raw)
    assert not [line for line in kept_lines(raw) if "relaxing" in line or "working" in line]
    quit_chat(child)

    child, banner = start_chat(env)  # a new process: only the disk remembers the first session
    transcript.append(banner)
    recall, _ = ask(child, "what did you find last time?", timeout=60)
    transcript.append(recall)
    assert "a stable rocksalt oxide with Mg" in recall
    for found in dict.fromkeys(ids):
        assert found in recall
    assert recall.index(ids[0]) < recall.index("E_hull") < recall.index(ids[-1])

    best, _ = ask(child, "show the best one", timeout=60)
    transcript.append(best)
    assert f"structure://{ids[0]}" in best and "_cell_length_a" in best and "E_hull" in best

    md, _ = ask(child, "run MD on the best one at 600 K", timeout=150)
    transcript.append(md)
    reply = md.split("tools directly)", 1)[-1]
    assert ids[0] in reply
    assert re.search(r"target temperature of 600 K", reply), reply
    assert re.search(r"averaged \d+ K", reply) and re.search(r"-?\d+\.\d+ eV/atom", reply), reply
    assert re.search(r"\d+(\.\d+)? ps", reply) and "200 steps" in reply and "meV/atom per ps" in reply
    assert "{" not in md and "'potential':" not in md
    quit_chat(child)

    whole = "\n".join(transcript)
    for banner_text in BANNERS:
        assert banner_text not in whole, banner_text
    log = (workspace / "agent" / "chat.log").read_text()
    assert "you> a stable rocksalt oxide with Mg" in log  # what libraries printed went here instead
    assert time.time() - began < 240


def test_follow_ups_read_the_thread_state_from_disk(workspace):
    """A planner for the same thread in a new object (as after a restart) lists the last search, shows the one asked
    for with its CIF and link, and 'it' means the structure last talked about; odd thread ids get safe file names."""
    from agent.offline_planner import OfflinePlanner, PlannerState, thread_state_path
    from tests.conftest import cif_of, rocksalt
    from tools.core.registry import ToolContext, get_tool

    ids = [
        get_tool("store_structure").run({"structure": {"text": cif_of(rocksalt(a))}}, ToolContext()).id
        for a in (4.21, 4.35)
    ]
    ranked = [
        {"rank": i + 1, "id": sid, "formula": "MgO", "spacegroup": "Fm-3m", "e_above_hull_eV": 0.001 * i,
         "formation_energy_per_atom_eV": -3.1 + 0.01 * i, "energy_per_atom_eV": -6.3, "family_match": True,
         "converged": True, "reused": False, "generator": "prototype"}
        for i, sid in enumerate(ids)
    ]
    PlannerState(last_ranked=ranked, request="a rocksalt with Mg", potential="chgnet", evaluations=2,
                 report_uri="artifact://r.md", hull_references={"Mg-O": ["Mg", "O2", "MgO"]},
                 focus_id=ids[0]).save(thread_state_path("lab"))

    fresh = OfflinePlanner()  # no thread: nothing persisted, nothing to recall
    assert "not run a search" in fresh.reply("what did you find last time?").text

    planner = OfflinePlanner(thread="lab")
    recall = planner.reply("what did you find last time?")
    assert not recall.tool_calls and "a rocksalt with Mg" in recall.text
    assert all(sid in recall.text for sid in ids) and "E_hull 0.0010 eV/atom" in recall.text
    assert "Mg-O: Mg, O2, MgO" in recall.text

    second = planner.reply("show the second one")
    assert second.tool_calls == [("get_structure", {"id": ids[1]})]
    assert f"structure://{ids[1]}" in second.text and "_cell_length_a" in second.text
    assert "Result number 2" in second.text

    again = OfflinePlanner(thread="lab")  # 'it' survives a restart too
    assert again._target("run md on it")["id"] == ids[1]
    assert again._target("run md on the best one")["id"] == ids[0]
    assert again._target(f"run md on {ids[1][:10]}")["id"] == ids[1]

    odd = thread_state_path("../x y")
    assert odd.parent == thread_state_path("lab").parent and "/" not in odd.name[:-5] and odd.name != "x_y.json"


def test_md_reply_is_sentences_with_units(workspace):
    from types import SimpleNamespace

    from agent.offline_planner import OfflinePlanner

    out = SimpleNamespace(
        ensemble="nvt_langevin", steps=200, n_atoms=8, potential="chgnet", simulated_time_ps=0.4, wall_time_s=12.3,
        mean_temperature_K=603.2, std_temperature_K=95.1, final_potential_energy_eV=-49.6,
        thermo_log_uri="artifact://missing.csv", energy_drift_meV_per_atom_per_ps=1.25, mean_pressure_GPa=0.5,
        mean_density_g_cm3=3.5, rdf_peaks_A=[2.1, 2.98], msd_final_A2=0.05, warnings=["MSD is not diffusive"],
        thermo_plot_uri="artifact://t.png", trajectory_uri="artifact://t.extxyz", supercell=[2, 2, 1],
    )
    text = OfflinePlanner()._md_sentences({"id": "s-1", "formula": "MgO"}, 600.0, out)
    assert "200 steps of NVT (Langevin thermostat)" in text and "target temperature of 600 K" in text
    assert "8 atoms (a 2x2x1 supercell)" in text and "'run MD on it with 64 atoms'" in text  # small: says so
    assert "averaged 603 K" in text and "-6.2000 eV/atom" in text and "0.4 ps" in text
    assert "1.25 meV/atom per ps" in text and "2.10, 2.98 Angstrom" in text and "MSD is not diffusive" in text
    assert "{" not in text
