package io.coherentfs.fuse;

import com.sun.net.httpserver.HttpServer;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Where a running mount's metrics can be read, and where its daemon takes requests.
 *
 * <ul>
 * <li>Always: a unix-domain socket {@code RUNDIR/<key>.sock}, where RUNDIR is
 *     {@code /run/coherentfs} (or {@code $XDG_RUNTIME_DIR/coherentfs}, else
 *     {@code /tmp/coherentfs-<uid>}, when that is not writable) and key is the first 16 hex
 *     digits of the SHA-256 of the mountpoint's real path. The socket is mode 0600. A client
 *     connects and sends one request line; the daemon answers and closes:
 *     <ul>
 *     <li>{@code stats}: a header (comment lines: image, mountpoint, pid) and the Prometheus
 *         text; {@code coherentfs stats MOUNTPOINT} sends it.
 *     <li>{@code remount ro} / {@code remount rw}: switches the engine ({@link Control}),
 *         answering {@code ok} or {@code error: MESSAGE}; {@code coherentfs mount -o remount}
 *         sends it.
 *     </ul>
 *     {@link #request} is the client.
 * <li>With {@code -o metrics=HOST:PORT}: the same Prometheus text over HTTP at {@code /metrics}
 *     (any path answers), on a loopback address only, with the JDK's HTTP server.
 * </ul>
 */
public final class MetricsEndpoints implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(MetricsEndpoints.class.getName());

    /** What the daemon does for a request other than {@code stats}. */
    @FunctionalInterface
    public interface Control {
        /** Switches the mount to read-only or back to read-write; throws what the user should read. */
        void remount(boolean readOnly) throws IOException;
    }

    /** A request line is short; anything longer is refused unread. */
    private static final int MAX_REQUEST = 256;

    private final PrometheusMeterRegistry registry;
    private final String header;
    private final Control control;
    private HttpServer http;
    private ServerSocketChannel unix;
    private Path socket;
    private Thread acceptor;

    public MetricsEndpoints(PrometheusMeterRegistry registry, String header, Control control) {
        this.registry = registry;
        this.header = header;
        this.control = control;
    }

    /** Candidate run directories, in order of preference. */
    public static List<Path> runDirs() {
        List<Path> dirs = new ArrayList<>();
        dirs.add(Path.of("/run/coherentfs"));
        String xdg = System.getenv("XDG_RUNTIME_DIR");
        if (xdg != null && !xdg.isEmpty()) {
            dirs.add(Path.of(xdg, "coherentfs"));
        }
        dirs.add(Path.of(System.getProperty("java.io.tmpdir"), "coherentfs-" + System.getProperty("user.name")));
        return dirs;
    }

    public static String key(Path mountpoint) {
        try {
            byte[] d = MessageDigest.getInstance("SHA-256").digest(mountpoint.toString().getBytes(StandardCharsets.UTF_8));
            return HexFormat.of().formatHex(d, 0, 8);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    public void startSocket(Path mountpoint) throws IOException {
        IOException last = null;
        for (Path dir : runDirs()) {
            try {
                Files.createDirectories(dir);
                Path s = dir.resolve(key(mountpoint) + ".sock");
                Files.deleteIfExists(s); // a daemon that died without cleaning up; the lock proves it is gone
                ServerSocketChannel ch = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
                ch.bind(UnixDomainSocketAddress.of(s));
                Files.setPosixFilePermissions(s, PosixFilePermissions.fromString("rw-------"));
                unix = ch;
                socket = s;
                break;
            } catch (IOException e) {
                last = e;
            }
        }
        if (unix == null) {
            throw new IOException("cannot create the stats socket: " + last.getMessage(), last);
        }
        acceptor = Thread.ofPlatform().daemon().name("stats-socket").start(() -> {
            while (unix.isOpen()) {
                try (SocketChannel c = unix.accept()) {
                    String answer = answer(readLine(c));
                    ByteBuffer out = ByteBuffer.wrap(answer.getBytes(StandardCharsets.UTF_8));
                    while (out.hasRemaining()) {
                        c.write(out);
                    }
                } catch (IOException e) {
                    if (unix.isOpen()) {
                        LOG.log(Level.FINE, "stats socket: " + e, e);
                    }
                }
            }
        });
        LOG.info("stats socket: " + socket);
    }

    private String answer(String request) {
        switch (request) {
            case "stats":
                return text();
            case "remount ro", "remount rw":
                try {
                    control.remount(request.endsWith("ro"));
                    return "ok\n";
                } catch (IOException | RuntimeException e) {
                    LOG.log(Level.WARNING, request + " failed: " + e.getMessage(), e);
                    return "error: " + e.getMessage() + "\n";
                }
            default:
                return "error: unknown request '" + request + "'\n";
        }
    }

    private static String readLine(SocketChannel c) throws IOException {
        ByteBuffer in = ByteBuffer.allocate(MAX_REQUEST);
        while (in.hasRemaining() && c.read(in) >= 0) {
            int end = indexOf(in, (byte) '\n');
            if (end >= 0) {
                return new String(in.array(), 0, end, StandardCharsets.UTF_8);
            }
        }
        return new String(in.array(), 0, in.position(), StandardCharsets.UTF_8).strip();
    }

    private static int indexOf(ByteBuffer b, byte x) {
        for (int i = 0; i < b.position(); i++) {
            if (b.array()[i] == x) {
                return i;
            }
        }
        return -1;
    }

    /**
     * Sends {@code request} to the daemon serving {@code mountpoint} (a real path) and returns its
     * whole answer.
     *
     * @throws MountException when no daemon socket exists for that mountpoint
     */
    public static String request(Path mountpoint, String request) throws IOException {
        List<Path> tried = new ArrayList<>();
        for (Path dir : runDirs()) {
            Path s = dir.resolve(key(mountpoint) + ".sock");
            tried.add(s);
            if (!Files.exists(s)) {
                continue;
            }
            try (SocketChannel c = SocketChannel.open(StandardProtocolFamily.UNIX)) {
                c.connect(UnixDomainSocketAddress.of(s));
                ByteBuffer out = ByteBuffer.wrap((request + "\n").getBytes(StandardCharsets.UTF_8));
                while (out.hasRemaining()) {
                    c.write(out);
                }
                return new String(Channels.newInputStream(c).readAllBytes(), StandardCharsets.UTF_8);
            }
        }
        throw new MountException("no daemon socket for " + mountpoint + " (looked for " + tried
                + "); is it a coherentfs mount?");
    }

    public void startHttp(InetSocketAddress address) throws IOException {
        http = HttpServer.create(address, 16);
        http.createContext("/", exchange -> {
            byte[] body = registry.scrape().getBytes(StandardCharsets.UTF_8);
            exchange.getResponseHeaders().set("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
            exchange.sendResponseHeaders(200, body.length);
            try (OutputStream o = exchange.getResponseBody()) {
                o.write(body);
            }
        });
        http.setExecutor(java.util.concurrent.Executors.newSingleThreadExecutor(
                Thread.ofPlatform().daemon().name("metrics-http").factory()));
        http.start();
        LOG.info("metrics: http://" + address.getHostString() + ":" + http.getAddress().getPort() + "/metrics");
    }

    private String text() {
        return header + registry.scrape();
    }

    @Override
    public void close() {
        if (http != null) {
            http.stop(0);
        }
        if (unix != null) {
            try {
                unix.close();
                Files.deleteIfExists(socket);
            } catch (IOException e) {
                LOG.log(Level.FINE, "closing the stats socket: " + e, e);
            }
        }
    }
}
