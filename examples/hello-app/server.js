// The quickstart's sample app (examples/quickstart.sh): a Node.js server with no dependencies, as
// the nodejs-app layer runs it — PORT=80 and the app's environment variables. It answers with its
// greeting, its version and the message the sample cookbook's hello::setup recipe wrote.
const fs = require("fs");
const http = require("http");
const os = require("os");

const VERSION = fs.readFileSync(__dirname + "/VERSION", "utf8").trim();
const MOTD = "/etc/hello/motd.txt";

const server = http.createServer((req, res) => {
  let motd;
  try {
    motd = fs.readFileSync(MOTD, "utf8");
  } catch (e) {
    motd = `(no ${MOTD}: the hello::setup recipe has not run here)\n`;
  }
  res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" });
  res.end(`${process.env.GREETING || "Hello"} from ${os.hostname()}, hello-app ${VERSION}\n${motd}`);
});
server.listen(Number(process.env.PORT || 8080));
// A deploy restarts the app: finish the requests in flight first.
process.on("SIGTERM", () => server.close(() => process.exit(0)));
