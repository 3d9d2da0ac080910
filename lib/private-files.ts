/**
 * The data directory holds password hashes, sessions and cabinet secret
 * nonces: only the platform's own user may read it.
 */
import fs from "node:fs";

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** Creates `dir` (and parents) as 0700, and tightens it if it already existed more open. */
export function ensurePrivateDir(dir: string): void {
	fs.mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
	if ((fs.statSync(dir).mode & 0o077) !== 0) fs.chmodSync(dir, PRIVATE_DIR_MODE);
}
