"""The clearing link: MQTT transport, ClrMsg envelopes, ISO 20022 documents, receipts."""
