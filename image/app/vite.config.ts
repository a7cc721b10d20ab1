import tailwindcss from '@tailwindcss/vite'
import react from '@vitejs/plugin-react'
import { defineConfig } from 'vite'

// https://vite.dev/config/
export default defineConfig({
  plugins: [react(), tailwindcss()],
  server: {
    host: '0.0.0.0',
    // Tests override these with `vite --port <n> --strictPort`; CLI flags win
    // over this file.
    port: 5173,
    strictPort: true,
    // In production the page is served through the E2B proxy
    // (Host: 5173-<sandbox-id>.e2b.app). Vite returns 403 for hosts that are
    // not listed here, and the same list is checked for the HMR WebSocket
    // upgrade.
    allowedHosts: ['.e2b.app', 'localhost', '127.0.0.1'],
    // HMR: no `ws`/`hmr` options are set on purpose. With nothing set, the
    // client (vite/dist/client/client.mjs) builds the socket URL from its own
    // `import.meta.url`:
    //   protocol = import.meta.url is https: ? 'wss' : 'ws'
    //   host     = import.meta.url hostname
    //   port     = import.meta.url port ('' for the default 443)
    // so
    //   - locally:        ws://127.0.0.1:5173/?token=...
    //   - through E2B:    wss://5173-<id>.e2b.app:/?token=...  (empty port = 443)
    // Both are correct. Setting `clientPort: 443` (now `server.ws.clientPort`;
    // `server.hmr.clientPort` is deprecated in Vite 8) would break local HMR
    // (the client would try 127.0.0.1:443) and would also turn off the
    // client's fallback to connecting directly to the server.
  },
})
