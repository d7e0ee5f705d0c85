"""carecoach's audio and telephony side: carriers, codec, VAD, ASR engines, TTS and the aiohttp app."""
