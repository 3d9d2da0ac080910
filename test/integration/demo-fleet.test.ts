/** The demo fleet a fresh store gets, through the repositories the merchants service uses (NeDB in memory). */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ServiceBroker } from "moleculer";
import { createAdapter } from "../../mixins/db.mixin";
import { Repository } from "../../mixins/repository";
import { seedDemoFleet, DEMO_FLEET, type CatalogRepos } from "../../services/merchants/demo-fleet";
import { hashCabinetSecret } from "../../domain/cabinet-secrets";
import { CATALOG_ENTITIES, enabledDoorCounts } from "../../services/merchants/model";

const broker = new ServiceBroker({ logger: false });
const open = (name: keyof CatalogRepos) =>
	new Repository<any>(CATALOG_ENTITIES[name], createAdapter(CATALOG_ENTITIES[name], { dataDir: null }), { broker, logger: broker.logger, persistent: false });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "lockers-demo-"));
const log = { info: jest.fn() };
let repos: CatalogRepos;

beforeAll(async () => {
	repos = { cities: open("cities"), merchants: open("merchants"), points: open("points"), cabinets: open("cabinets") };
	for (const r of Object.values(repos)) await r.connect();
});
afterAll(async () => {
	for (const r of Object.values(repos)) await r.disconnect();
	fs.rmSync(tmp, { recursive: true, force: true });
});

it("seeds an empty catalog once, keeping a city that already exists", async () => {
	await repos.cities.insert({ _id: "SH", name: "上海", lat: 31.2304, lng: 121.4737, createdAt: new Date() });
	const file = path.join(tmp, "creds.jsonl");
	const summary = await seedDemoFleet(repos, log, { cabinetSecretKey: "test-key", credentialsFile: file });
	expect(summary).toMatchObject({ seeded: true, cities: 4, merchants: 5, points: DEMO_FLEET.points });
	expect(await repos.cities.count()).toBe(5);
	expect(await repos.points.count()).toBe(DEMO_FLEET.points);
	expect(await repos.cabinets.count()).toBe(summary.cabinets);
	expect(summary.doors).toBe(summary.cabinets * DEMO_FLEET.doorsPerCabinet);

	const point = (await repos.points.find({ limit: 1 }))[0];
	expect(point.doors).toEqual(enabledDoorCounts(await repos.cabinets.find({ query: { pointId: point._id } })));

	expect(fs.statSync(file).mode & 0o777).toBe(0o600);
	const lines = fs.readFileSync(file, "utf8").trim().split("\n").map(l => JSON.parse(l));
	expect(lines).toHaveLength(summary.cabinets);
	const cabinet = (await repos.cabinets.findById(lines[0].username))!;
	expect(cabinet.secretHash).toBe(hashCabinetSecret(lines[0].password));
	expect(lines[0].pointId).toBe(cabinet.pointId);

	expect(await seedDemoFleet(repos, log, { cabinetSecretKey: "test-key" })).toMatchObject({ seeded: false, points: 0 });
	expect(await repos.points.count()).toBe(DEMO_FLEET.points);
});
