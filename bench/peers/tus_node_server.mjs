// @tus/server with @tus/file-store on loopback, on a free port written to PORT_FILE.
// usage: node tus_node_server.mjs PORT_FILE DIRECTORY
import { writeFileSync } from "node:fs";
import http from "node:http";
import { FileStore } from "@tus/file-store";
import { Server } from "@tus/server";

const [portFile, directory] = process.argv.slice(2);
const tus = new Server({ path: "/files", datastore: new FileStore({ directory }) });
const server = http.createServer((req, res) => tus.handle(req, res));
server.listen(0, "127.0.0.1", () => {
  writeFileSync(portFile, String(server.address().port));
});
