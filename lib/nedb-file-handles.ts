/**
 * NeDB appends every write to its datafile with fs.appendFile(path), which
 * opens, writes and closes the file each time: three system calls through the
 * thread pool per write, measured at a quarter of the embedded platform's CPU
 * under the orders benchmark. This keeps one open handle per datafile instead
 * (appends stay in order: NeDB runs one operation at a time per datastore).
 * Whatever replaces or removes the file (compaction's write-and-rename, unlink)
 * closes its handle first, so nothing is ever appended to a replaced file.
 */
import fs from "node:fs";
import type { FileHandle } from "node:fs/promises";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const storage = require("@seald-io/nedb/lib/storage.js") as Record<string, (...args: any[]) => Promise<unknown>> & { __handlesInstalled?: boolean };

const handles = new Map<string, Promise<FileHandle>>();

async function drop(filename: string): Promise<void> {
	const h = handles.get(filename);
	if (!h) return;
	handles.delete(filename);
	await h.then(fh => fh.close(), () => undefined).catch(() => undefined);
}

export function installNedbFileHandles(): void {
	if (storage.__handlesInstalled) return;
	storage.__handlesInstalled = true;
	storage.appendFileAsync = async (filename: string, data: string, opts?: { encoding?: BufferEncoding; mode?: number }) => {
		let h = handles.get(filename);
		if (!h) {
			h = fs.promises.open(filename, "a", opts?.mode);
			handles.set(filename, h);
			h.catch(() => handles.delete(filename));
		}
		await (await h).appendFile(data, { encoding: opts?.encoding ?? "utf8" });
	};
	for (const name of ["crashSafeWriteFileLinesAsync", "unlinkAsync", "writeFileAsync", "ensureDatafileIntegrityAsync"]) {
		const original = storage[name];
		storage[name] = async (filename: string, ...rest: unknown[]) => {
			await drop(filename);
			return original(filename, ...rest);
		};
	}
	const rename = storage.renameAsync;
	storage.renameAsync = async (from: string, to: string) => {
		await Promise.all([drop(from), drop(to)]);
		return rename(from, to);
	};
}
