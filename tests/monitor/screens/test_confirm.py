"""The question asked before a slave is killed: nothing is sent unless the answer is yes."""

from __future__ import annotations

from fake_master import FakeMaster, slave_record
from pilot import SIZE, connected, monitor, next_command, run, until

from piwheels.monitor.screens import ConfirmScreen


def test_kill_asks_first(fake: FakeMaster) -> None:
    async def test() -> None:
        app = monitor(fake)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot, fake, slave_record(6, "pi-k"))
            await pilot.press("k")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
            assert "Kill slave 6 (pi-k)? It stops and exits, abandoning numpy 2.1.0." in str(
                app.screen.query_one("#question").render()
            )
            await pilot.press("p", "S", "K")  # the modal question keeps app keys from acting
            await pilot.pause(0.3)
            assert fake.commands() == []
            await pilot.press("enter")  # the focused button is No
            await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), "dismissal")
            await pilot.press("k", "n")
            await pilot.pause(0.3)
            assert fake.commands() == []
            await pilot.press("k", "y")
            assert await next_command(pilot, fake) == ("KILL", 6)
            await pilot.press("K")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
            await pilot.press("escape")
            await pilot.pause(0.3)
            assert fake.commands() == []
            await pilot.press("K", "y")
            assert await next_command(pilot, fake) == ("KILL", None)

    run(test)
