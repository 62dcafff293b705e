"""How a Realtime connection turns the recognizer's messages into items: boundaries, deltas, commit order.

The recognizer is replaced by scripted ``speech.*`` messages fed to the connection, as a segment's session would
deliver them; no model, no socket.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from auricle.config import StreamingSettings
from auricle.streaming.realtime import RealtimeConnection, _Segment


class FakeSession:
    def __init__(self, name: str) -> None:
        self.id = name
        self.ended = False
        self.fill = 0.0

    def end(self) -> None:
        self.ended = True

    def backpressure_change(self) -> None:
        return None


def connection() -> RealtimeConnection:
    registry = SimpleNamespace(canonical=lambda name: name or "tiny.en", info=lambda name: None)
    scheduler = SimpleNamespace(register=lambda *a: None, unregister=lambda *a: None, notify=lambda *a: None)
    hub = SimpleNamespace(
        settings=SimpleNamespace(streaming=StreamingSettings()),
        runtime=SimpleNamespace(registry=registry),
        scheduler=scheduler,
    )
    return RealtimeConnection(websocket=None, hub=hub)  # type: ignore[arg-type]


def segment(conn: RealtimeConnection, name: str, *, server_vad: bool) -> _Segment:
    seg = _Segment(FakeSession(name), 0.0, server_vad, 300 if server_vad else 0)  # type: ignore[arg-type]
    seg.appended_ms = 5000
    conn.segments[name] = seg
    conn.current = seg
    return seg


def sent(conn: RealtimeConnection) -> list[dict[str, Any]]:
    events = []
    while not conn.outbox.empty():
        events.append(conn.outbox.get_nowait())
    return events


def hypothesis(offset: int, text: str) -> dict[str, Any]:
    return {"type": "speech.hypothesis", "payload": {"offset": offset, "duration": 500, "text": text}}


def phrase(offset: int, duration: int, text: str) -> dict[str, Any]:
    payload = {"offset": offset, "duration": duration, "text": text, "confidence": 0.9, "status": "Success"}
    return {"type": "speech.phrase", "payload": payload}


END = {"type": "speech.phrase", "payload": {"offset": 0, "duration": 0, "text": "", "status": "EndOfStream"}}


def brief(events: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """(type, the field that matters) per event."""
    out = []
    for event in events:
        kind = event["type"].removeprefix("conversation.item.input_audio_transcription.")
        value = event.get("delta", event.get("transcript", event.get("audio_start_ms", event.get("audio_end_ms"))))
        out.append((kind, value))
    return out


def test_server_vad_phrases_are_items_with_deltas_from_agreed_hypotheses():
    # Given a server_vad segment whose recognizer hypothesises, then emits two phrases
    conn = connection()
    seg = segment(conn, "s1", server_vad=True)
    conn._on_messages(seg, [hypothesis(400, "and so"), hypothesis(400, "and so my fellow")])
    conn._on_messages(seg, [phrase(400, 1600, "And so my fellow Americans,"), hypothesis(2500, "ask not")])
    conn._on_messages(seg, [phrase(2500, 1000, "ask not")])
    events = sent(conn)
    # Then each phrase is an item: started when first hypothesised (minus the prefix padding), deltas of the words
    # two hypotheses agree on, then at the phrase: stopped, committed, added, the rest as a delta, completed, done
    assert brief(events) == [
        ("input_audio_buffer.speech_started", 100),
        ("delta", "and so"),
        ("input_audio_buffer.speech_stopped", 2000),
        ("input_audio_buffer.committed", None),
        ("conversation.item.added", None),
        ("delta", " my fellow Americans,"),
        ("completed", "And so my fellow Americans,"),
        ("conversation.item.done", None),
        ("input_audio_buffer.speech_started", 2200),
        ("input_audio_buffer.speech_stopped", 3500),
        ("input_audio_buffer.committed", None),
        ("conversation.item.added", None),
        ("delta", "ask not"),
        ("completed", "ask not"),
        ("conversation.item.done", None),
    ]
    first, second = (e for e in events if e["type"] == "input_audio_buffer.committed")
    assert first["previous_item_id"] is None and second["previous_item_id"] == first["item_id"]
    assert events[6]["usage"] == {"type": "duration", "seconds": 1.9}


def test_manual_commit_holds_phrases_until_committed_and_completes_in_commit_order():
    conn = connection()
    # Given a first segment with a phrase recognised before the client commits it
    one = segment(conn, "s1", server_vad=False)
    conn._on_messages(one, [hypothesis(0, "hello"), phrase(0, 800, "Hello there.")])
    assert sent(conn) == []  # nothing to show before the commit
    conn._flush(one)
    assert one.session.ended and conn.current is None
    # When a second segment is committed and finishes before the first
    two = segment(conn, "s2", server_vad=False)
    conn._flush(two)
    conn._on_messages(two, [phrase(5000, 900, "Second."), END])
    conn._on_messages(one, [phrase(900, 900, "General Kenobi."), END])
    # Then the held phrase goes out right after the first commit, and the second item's transcription waits for
    # the first item's completion
    assert brief(sent(conn)) == [
        ("input_audio_buffer.committed", None),
        ("conversation.item.added", None),
        ("delta", "Hello there."),
        ("input_audio_buffer.committed", None),
        ("conversation.item.added", None),
        ("delta", " General Kenobi."),
        ("completed", "Hello there. General Kenobi."),
        ("conversation.item.done", None),
        ("delta", "Second."),
        ("completed", "Second."),
        ("conversation.item.done", None),
    ]
    assert conn.segments == {} and not conn.items


def test_clear_drops_the_open_item_and_its_text():
    conn = connection()
    seg = segment(conn, "s1", server_vad=True)
    conn._on_messages(seg, [hypothesis(0, "never"), hypothesis(0, "never mind")])
    conn._clear()
    conn._on_messages(seg, [phrase(0, 900, "never mind")])  # arrives after the clear: ignored
    kinds = [e["type"] for e in sent(conn)]
    assert kinds[-1] == "input_audio_buffer.cleared" and "input_audio_buffer.committed" not in kinds
    assert not conn.items and conn.current is None
