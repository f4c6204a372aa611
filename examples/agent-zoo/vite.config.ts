import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

export default defineConfig({
  plugins: [react()],
  // switchboard-client is linked from ../../clients/js, which has React of its own for its tests: one React.
  resolve: { dedupe: ['react', 'react-dom', '@tanstack/react-query'] },
  // Relative asset paths, so the build can be served from any folder.
  base: './',
});
