/**
 * NeDB appends every write to its datafile with fs.appendFile(path), which
 * opens, writes and closes the file each time: three system calls through the
 * thread pool per write, measured at a quarter of the embedded platform's CPU
 * under the orders benchmark. This keeps one open descriptor per datafile and
 * appends with one synchronous write: a small append lands in the page cache
 * in microseconds, far less than a thread-pool round trip costs, and is as
 * durable (a process crash keeps it; fsync was never done). Appends stay in
 * order: NeDB runs one operation at a time per datastore. Whatever replaces or
 * removes the file (compaction's write-and-rename, unlink) closes its
 * descriptor first, so nothing is ever appended to a replaced file.
 */
import fs from "node:fs";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const storage = require("@seald-io/nedb/lib/storage.js") as Record<string, (...args: any[]) => Promise<unknown>> & { __handlesInstalled?: boolean };

const handles = new Map<string, number>();

async function drop(filename: string): Promise<void> {
	const fd = handles.get(filename);
	if (fd === undefined) return;
	handles.delete(filename);
	try {
		fs.closeSync(fd);
	} catch {
		/* already closed */
	}
}

export function installNedbFileHandles(): void {
	if (storage.__handlesInstalled) return;
	storage.__handlesInstalled = true;
	storage.appendFileAsync = async (filename: string, data: string, opts?: { encoding?: BufferEncoding; mode?: number }) => {
		let fd = handles.get(filename);
		if (fd === undefined) {
			fd = fs.openSync(filename, "a", opts?.mode);
			handles.set(filename, fd);
		}
		const buf = Buffer.from(data, opts?.encoding ?? "utf8");
		for (let off = 0; off < buf.length; ) off += fs.writeSync(fd, buf, off);
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
