//! A fake Anthropic API and a TLS-intercepting CONNECT proxy, so the real Claude Code adapter runs offline.
