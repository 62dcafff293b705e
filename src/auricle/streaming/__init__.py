"""Real-time transcription over WebSocket ``/transcribe``: the Azure-style protocol of the OpenASR streaming server,
so that clients written for it work unchanged. This docstring is the contract's summary in the repository;
:mod:`auricle.streaming.protocol` has the messages and their fields.

Contract:

- Every JSON message has ``type`` and ``payload``; server messages also carry ``session_id``. With API keys
  configured the upgrade needs ``Authorization: Bearer <key>`` (else HTTP 401 before the handshake); keys in the
  query string are not accepted.
- The client sends ``speech.config`` (language, sample_rate 8000-96000, encoding ``pcm_s16le`` or ``opus``,
  window/overlap durations, model_id, resume_checkpoint) and gets ``speech.config.ack`` with ``session_id`` and
  ``effective_config``; then binary audio frames (no per-frame metadata); then ``speech.end``.
- For each completed stretch of speech the server sends ``speech.hypothesis`` (interim), ``speech.phrase``
  (final, ``status: "Success"``) and ``speech.checkpoint`` (everything so far, to resume from on any server).
  After ``speech.end``: a final ``speech.phrase`` with ``status: "EndOfStream"`` and the full transcript, a final
  ``speech.checkpoint``, then a normal close (1000).
- ``speech.backpressure``: ``slow_down`` when the session's audio buffer is over 80% full, ``ok`` once it is back
  under 50%. A client that keeps sending into a full buffer is not read from until recognition has made room.
- ``speech.error`` codes: ``INVALID_MESSAGE``, ``INVALID_STATE``, ``SESSION_LIMIT``, ``SESSION_NOT_FOUND``,
  ``AUDIO_ERROR``, ``RATE_LIMITED``; the session goes on after an error unless a limit ended it.
- Limits (``StreamingSettings``): concurrent sessions, idle timeout, session duration, transcript length, frame
  size, audio buffer.
- Beyond the original: hypotheses come before a window fills, and one utterance may yield several phrases, each
  final and in order.

Modules: ``protocol`` holds the messages, ``session`` a connection's state, ``recognizer`` and ``agreement`` the
recognition loop (VAD endpointing, LocalAgreement-2), ``scheduler`` the shared fair inference scheduler, ``hub``
what all connections of an app share, ``handlers`` the per-message handlers and ``endpoint`` the route. The engine
is reached only through :mod:`auricle.engine.protocols` (``StreamingDecoder``, ``StreamingVad``) and
:class:`~auricle.engine.runtime.Runtime`.
"""

__all__: list[str] = []
