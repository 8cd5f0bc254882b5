from tests.conftest import Service
from tests.support.booking import scheduling
from tests.support.patient import Patient


def run(service: Service, number: str, texts: list[str]) -> None:
    p = Patient(service, number)
    print("\nTB:", p.call())
    for t in texts:
        out = p.say(t)
        c = p.conversation()
        print(
            f"P: {t!r}\n  -> {out}  [stage={c.state.get('stage') if c else None} open={c.is_open if c else None}]"
        )


def test_repro_link(service: Service) -> None:
    run(
        service,
        "+13105559001",
        ["botox", "yes", "friday", "yes", "no", "new", "thanks", "ok", "👍"],
    )


def test_repro_sched(make_service) -> None:  # type: ignore[no-untyped-def]
    s = make_service(edit=scheduling())
    run(
        s,
        "+13105559002",
        [
            "hydrafacial",
            "yes",
            "tuesday morning",
            "first time",
            "none of those",
            "none of those",
            "2",
            "C",
            "thanks",
            "X",
            "yes",
        ],
    )
