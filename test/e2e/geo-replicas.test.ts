/**
 * Two geo replicas on the real NATS mesh, with the real Redis cacher. Each
 * replica sits with its own gateway (preferLocal), so a request to gateway A is
 * answered by geo A and one to gateway B by geo B. Both must give the answer a
 * brute-force scan of the catalog gives — computed or from their own nearby
 * cache (each replica keeps its candidate sets in memory, none in Redis) — and
 * a catalog change must reach both indexes and make both caches forget, so
 * neither keeps serving the old answer.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import IORedis from "ioredis";
import { httpClient, type Client } from "../support/platform";
import { freePort, spawnNode, waitFor, waitForHttp, type NodeProcess } from "../support/processes";
import { bruteForceNearby } from "../../services/geo/point-index";

jest.setTimeout(180_000);

const NATS = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const REDIS = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const ADMIN_PASSWORD = "geo-admin-pass-1";

interface Row { id: string; lat: number; lng: number; distance: number }

describe("geo replicas over real NATS with the Redis cacher", () => {
	const namespace = `e2e-geo-${process.pid}`;
	const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "lockers-geo-"));
	const redis = new IORedis(REDIS);
	const nodes: NodeProcess[] = [];
	const common = { TRANSPORTER: NATS, REDIS_URL: REDIS, NAMESPACE: namespace, ADMIN_PASSWORD, RATE_LIMIT_IP: "100000" };
	let a: Client;
	let b: Client;
	let adminToken: string;
	let catalog: Row[] = [];

	async function startGatewayWithGeo(name: string): Promise<Client> {
		const port = await freePort();
		const node = spawnNode(name, { ...common, SERVICES: "api,geo", PORT: String(port) });
		nodes.push(node);
		const api = httpClient(`http://127.0.0.1:${port}`);
		await waitForHttp(`http://127.0.0.1:${port}/api/v1/points/nearby?lat=31.23&lng=121.47`, s => s === 200, 60_000, node);
		return api;
	}

	/** Every active point of the demo fleet, read page by page through the city switch. */
	async function readCatalog(api: Client): Promise<Row[]> {
		const rows: Row[] = [];
		for (const city of (await api("GET", "/api/v1/cities")).body as { code: string }[]) {
			for (let page = 1; ; page++) {
				const r = await api("GET", `/api/v1/cities/${city.code}/points?page=${page}&pageSize=100`);
				rows.push(...r.body.rows);
				if (r.body.rows.length < 100) break;
			}
		}
		return rows;
	}

	beforeAll(async () => {
		const healthPort = await freePort();
		const core = spawnNode("core", { ...common, SERVICES: "users,merchants", DATA_DIR: dataDir, HEALTH_PORT: String(healthPort) });
		nodes.push(core);
		await waitForHttp(`http://127.0.0.1:${healthPort}/ready`, s => s === 200, 60_000, core);
		[a, b] = await Promise.all([startGatewayWithGeo("gateway-geo-a"), startGatewayWithGeo("gateway-geo-b")]);
		adminToken = (await a("POST", "/api/v1/auth/login", { login: "admin", password: ADMIN_PASSWORD })).body.accessToken;
		catalog = await readCatalog(a);
	});

	afterAll(async () => {
		await Promise.all(nodes.map(n => n.stop()));
		const ours = await redis.keys(`*${namespace}*`);
		if (ours.length) await redis.del(...ours);
		redis.disconnect();
		fs.rmSync(dataDir, { recursive: true, force: true });
	});

	it("both replicas answer like a brute-force scan of the catalog, computed or from their cache", async () => {
		expect(catalog.length).toBeGreaterThan(150); // the demo fleet
		const queries = catalog.slice(0, 40).map((p, i) => ({ lat: p.lat + 0.003, lng: p.lng - 0.002, radius: [500, 2000, 5000, 20000][i % 4], limit: 10 }));
		for (const [i, q] of queries.entries()) {
			const path = `/api/v1/points/nearby?lat=${q.lat}&lng=${q.lng}&radius=${q.radius}&limit=${q.limit}`;
			// Each asked twice: computed, then from its cache.
			const answers = [await a("GET", path), await b("GET", path), await a("GET", path), await b("GET", path)];
			const want = bruteForceNearby(catalog, q).map(h => h.point.id);
			for (const answer of answers) expect(answer.body.rows.map((r: Row) => r.id)).toEqual(want);
		}
		// The Redis cacher holds other things (the city map, revoked sessions), never nearby candidates.
		expect(await redis.keys(`*${namespace}*nearby*`)).toEqual([]);
	});

	it("a catalog change reaches both indexes and both caches forget", async () => {
		const target = catalog[0];
		const path = `/api/v1/points/nearby?lat=${target.lat}&lng=${target.lng}&radius=1000&limit=5`;
		// Cached on both sides first.
		for (const api of [a, b, a, b]) expect((await api("GET", path)).body.rows[0].id).toBe(target.id);

		const patch = await a("PATCH", `/api/v1/points/${target.id}`, { status: "disabled" }, { token: adminToken });
		expect(patch.status).toBe(200);
		for (const [name, api] of [["a", a], ["b", b]] as const) {
			await waitFor(`replica ${name} forgets the disabled point`, async () => {
				const ids = (await api("GET", path)).body.rows.map((r: Row) => r.id);
				return ids.includes(target.id) ? undefined : true;
			}, 10_000);
		}
		// And it stays gone: no stale cache entry brings it back on either side.
		for (const api of [a, b, a, b]) expect((await api("GET", path)).body.rows.map((r: Row) => r.id)).not.toContain(target.id);

		expect((await a("PATCH", `/api/v1/points/${target.id}`, { status: "active" }, { token: adminToken })).status).toBe(200);
		for (const api of [a, b]) {
			await waitFor("the point is back", async () => ((await api("GET", path)).body.rows[0]?.id === target.id ? true : undefined), 10_000);
		}
	});
});
