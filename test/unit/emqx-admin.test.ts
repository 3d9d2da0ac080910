import http from "node:http";
import type { AddressInfo } from "node:net";
import { kickEmqxClient } from "../../services/hardware/emqx-admin";

describe("kicking a cabinet on EMQX", () => {
	let server: http.Server;
	let url: string;
	const seen: { method?: string; url?: string; auth?: string }[] = [];
	let status = 204;

	beforeAll(async () => {
		server = http.createServer((req, res) => {
			seen.push({ method: req.method, url: req.url, auth: req.headers.authorization });
			res.statusCode = status;
			res.end();
		});
		await new Promise<void>(r => server.listen(0, "127.0.0.1", r));
		url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
	});
	afterAll(() => new Promise<void>(r => server.close(() => r())));

	it("sends DELETE /api/v5/clients/{clientid} with the API key as Basic auth", async () => {
		await expect(kickEmqxClient({ url, key: "k1", secret: "s1" }, "cab_A b")).resolves.toBe(true);
		expect(seen.at(-1)).toEqual({ method: "DELETE", url: "/api/v5/clients/cab_A%20b", auth: `Basic ${Buffer.from("k1:s1").toString("base64")}` });
	});

	it("takes 404 (not connected) as done and reports any other answer", async () => {
		status = 404;
		await expect(kickEmqxClient({ url, key: "k", secret: "s" }, "cab_B")).resolves.toBe(true);
		status = 401;
		await expect(kickEmqxClient({ url, key: "k", secret: "s" }, "cab_B")).rejects.toThrow(/401/);
	});
});
