/**
 * The baseline target: plain `node:http` answering `GET /api/v1/me` with the
 * same body the gateway returns — the most this Node version can do here.
 * Started by the benchmark in its own process, on `PORT`.
 */
import http from "node:http";

const ME = JSON.stringify({ id: "usr_x", phone: "+8613800138000", name: "用户8000", roles: ["user"] });
const HEALTH = JSON.stringify({ status: "ok" });

const server = http.createServer((req, res) => {
	const body = req.method === "GET" && req.url === "/api/v1/me" ? ME : req.method === "GET" && req.url === "/api/v1/health" ? HEALTH : undefined;
	if (body === undefined) {
		res.writeHead(404).end();
		return;
	}
	res.writeHead(200, { "Content-Type": "application/json; charset=utf-8", "Content-Length": Buffer.byteLength(body) });
	res.end(body);
});

server.listen(Number(process.env.PORT ?? 0), "127.0.0.1");

const stop = () => server.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
