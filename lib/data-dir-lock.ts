/**
 * Who is using a NeDB data directory. NeDB keeps each collection in memory and
 * appends to (and now and then rewrites) its file: a second process writing
 * the same file loses the other's writes. The platform marks the directory
 * while its database services run (`DATA_DIR/platform.lock`: pid, host,
 * since); tools that write the store directly (`npm run admin`) refuse while
 * a live process holds it. The mark is advisory: a crash leaves it behind,
 * and a dead pid on this host makes it stale.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PRIVATE_FILE_MODE } from "./private-files";

export const LOCK_FILE = "platform.lock";

export interface DataDirHolder {
	pid: number;
	host: string;
	since: string;
	/** What holds it ("platform", "admin tool"). */
	what: string;
}

const held = new Map<string, { count: number; file: string }>();
let exitHookInstalled = false;

export const lockFileOf = (dataDir: string) => path.join(path.resolve(dataDir), LOCK_FILE);

function readHolder(file: string): DataDirHolder | null {
	try {
		const h = JSON.parse(fs.readFileSync(file, "utf8")) as DataDirHolder;
		return Number.isInteger(h.pid) && typeof h.host === "string" ? h : null;
	} catch {
		return null;
	}
}

function alive(pid: number): boolean {
	try {
		process.kill(pid, 0);
		return true;
	} catch (err) {
		return (err as NodeJS.ErrnoException).code === "EPERM"; // exists, another user's
	}
}

/**
 * The other process that holds `dataDir`, or null when none does (no mark, a
 * stale one, or this very process). A mark from another host cannot be
 * checked and counts as held.
 */
export function otherHolder(dataDir: string): DataDirHolder | null {
	const h = readHolder(lockFileOf(dataDir));
	if (!h) return null;
	if (h.host === os.hostname() && (h.pid === process.pid || !alive(h.pid))) return null;
	return h;
}

/**
 * The live process that holds `dataDir` — this one too, when its own services
 * do (a tool must not write beside them either) — or null.
 */
export function liveHolder(dataDir: string): DataDirHolder | null {
	const file = lockFileOf(dataDir);
	const h = readHolder(file);
	if (!h) return null;
	if (h.host === os.hostname() && h.pid === process.pid) return held.has(file) ? h : null;
	return otherHolder(dataDir);
}

/**
 * Marks `dataDir` as used by this process until the returned release is
 * called as often as hold was (several services of one process share it).
 * Answers the other live holder it replaced, if any, so the caller can warn.
 */
export function holdDataDir(dataDir: string, what = "platform"): { release(): void; replaced: DataDirHolder | null } {
	const file = lockFileOf(dataDir);
	let replaced: DataDirHolder | null = null;
	const entry = held.get(file);
	if (entry) entry.count++;
	else {
		replaced = otherHolder(dataDir);
		const me: DataDirHolder = { pid: process.pid, host: os.hostname(), since: new Date().toISOString(), what };
		fs.writeFileSync(file, `${JSON.stringify(me)}\n`, { mode: PRIVATE_FILE_MODE });
		held.set(file, { count: 1, file });
		if (!exitHookInstalled) {
			exitHookInstalled = true;
			process.on("exit", () => {
				for (const e of held.values()) removeIfMine(e.file);
			});
		}
	}
	let released = false;
	return {
		replaced,
		release() {
			if (released) return;
			released = true;
			const e = held.get(file);
			if (!e || --e.count > 0) return;
			held.delete(file);
			removeIfMine(file);
		},
	};
}

function removeIfMine(file: string): void {
	const h = readHolder(file);
	if (h && h.pid === process.pid && h.host === os.hostname()) fs.rmSync(file, { force: true });
}

/** How a refusal names the holder. */
export function describeHolder(h: DataDirHolder): string {
	return `${h.what} pid ${h.pid} on ${h.host}, since ${h.since}`;
}

/**
 * Why a tool will not write the NeDB files of `dataDir` while `holder` uses them, and what to do;
 * `alternative` names another way to do the job, if the tool has one.
 */
export function heldDataDirText(dataDir: string, holder: DataDirHolder, alternative?: string): string {
	return (
		`A platform is using DATA_DIR ${dataDir} (${describeHolder(holder)}), and two processes must not write its NeDB files.\n` +
		`Stop it (Ctrl-C) and run this again${alternative ? `, or ${alternative}` : ""}.\n` +
		`If no such process runs any more (another host, a reused pid), delete ${lockFileOf(dataDir)}.`
	);
}
