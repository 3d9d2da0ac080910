/**
 * NeDB with one open handle per datafile: every write reaches the file, also
 * across compactions (which replace the file), and a fresh load sees it all.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Datastore from "@seald-io/nedb";
import { installNedbFileHandles } from "../../lib/nedb-file-handles";

it("keeps every write through compactions and reloads", async () => {
	installNedbFileHandles();
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nedb-handles-"));
	const filename = path.join(dir, "t.db");
	try {
		const db = new Datastore({ filename });
		await db.loadDatabaseAsync();
		for (let i = 0; i < 3; i++) await db.insertAsync({ _id: `a${i}`, n: i });
		await db.compactDatafileAsync(); // the file is replaced
		for (let i = 0; i < 3; i++) await db.insertAsync({ _id: `b${i}`, n: i });
		await db.updateAsync({ _id: "a0" }, { $set: { n: 42 } }, {});
		await db.removeAsync({ _id: "b2" }, {});
		await db.compactDatafileAsync();
		await db.insertAsync({ _id: "c0", n: 7 });

		const again = new Datastore({ filename });
		await again.loadDatabaseAsync();
		const docs = (await again.findAsync({})).sort((x: any, y: any) => x._id.localeCompare(y._id));
		expect(docs.map((d: any) => [d._id, d.n])).toEqual([["a0", 42], ["a1", 1], ["a2", 2], ["b0", 0], ["b1", 1], ["c0", 7]]);
	} finally {
		fs.rmSync(dir, { recursive: true, force: true });
	}
});
