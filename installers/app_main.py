"""The workstation bundle's entry script: PyInstaller freezes this into ``edgeloop``.

In a bundle, ``sys.executable`` is this program, not a Python interpreter. The simulated fleet
(app/fleet/simulator.py, behind ``edgeloop simulate`` and ``edgeloop demo``) starts each
device's agent as ``sys.executable -m app.fleet.agent ...``, so the bundled program answers
that one ``-m`` itself: the agent's code is in the bundle. Any other ``-m`` is refused.
"""

import sys

AGENT_MODULE = "app.fleet.agent"


def main() -> None:
    if sys.argv[1:2] == ["-m"]:
        module = sys.argv[2] if len(sys.argv) > 2 else ""
        if module != AGENT_MODULE:
            sys.exit(f"edgeloop: this bundle runs only `-m {AGENT_MODULE}`, not `-m {module}`")
        from app.fleet.agent.cli import main as agent_main

        sys.exit(agent_main(sys.argv[3:]))
    from app.cli.main import run

    run()


if __name__ == "__main__":
    main()
