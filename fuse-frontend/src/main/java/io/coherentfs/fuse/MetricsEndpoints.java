package io.coherentfs.fuse;

import com.sun.net.httpserver.HttpServer;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Where a running mount's metrics can be read.
 *
 * <ul>
 * <li>Always: a unix-domain socket {@code RUNDIR/<key>.sock}, where RUNDIR is
 *     {@code /run/coherentfs} (or {@code $XDG_RUNTIME_DIR/coherentfs}, else
 *     {@code /tmp/coherentfs-<uid>}, when that is not writable) and key is the first 16 hex
 *     digits of the SHA-256 of the mountpoint's real path. A client connects, the daemon writes
 *     a header (comment lines: image, mountpoint, pid) and the Prometheus text, and closes.
 *     {@code coherentfs stats MOUNTPOINT} reads it. The socket is mode 0600.
 * <li>With {@code -o metrics=HOST:PORT}: the same Prometheus text over HTTP at {@code /metrics}
 *     (any path answers), on a loopback address only, with the JDK's HTTP server.
 * </ul>
 */
public final class MetricsEndpoints implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(MetricsEndpoints.class.getName());

    private final PrometheusMeterRegistry registry;
    private final String header;
    private HttpServer http;
    private ServerSocketChannel unix;
    private Path socket;
    private Thread acceptor;

    public MetricsEndpoints(PrometheusMeterRegistry registry, String header) {
        this.registry = registry;
        this.header = header;
    }

    /** Candidate run directories, in order of preference. */
    public static java.util.List<Path> runDirs() {
        java.util.List<Path> dirs = new java.util.ArrayList<>();
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
                    c.write(ByteBuffer.wrap(text().getBytes(StandardCharsets.UTF_8)));
                } catch (IOException e) {
                    if (unix.isOpen()) {
                        LOG.log(Level.FINE, "stats socket: " + e, e);
                    }
                }
            }
        });
        LOG.info("stats socket: " + socket);
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
