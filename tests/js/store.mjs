// The suite's PostgreSQL pass (SWITCHBOARD_TEST_STORE=postgres://…, set by scripts/test.sh): the `--store` flags
// that give a hub on `dir` a database of its own, named after the dir, so a restart on the same dir finds its data.
// Without the variable: none, and the hub keeps its SQLite file. Every Node test helper that starts a hub uses it.
import { createHash } from 'node:crypto';

export function storeArgs(dir) {
  const base = process.env.SWITCHBOARD_TEST_STORE;
  if (!base) return [];
  const name = createHash('sha256').update(dir).digest('hex').slice(0, 16);
  return ['--store', `${base.replace(/\/+$/, '')}/sb_${name}`];
}
