package io.coherentfs.fuse;

import io.coherentfs.blockdev.DirectDevice;
import io.coherentfs.blockdev.error.Errno;
import io.coherentfs.blockdev.error.ErrnoException;
import io.coherentfs.blockdev.ffm.LinuxSyscalls;
import io.coherentfs.core.CoherentFs;
import io.coherentfs.core.format.Layout;
import io.coherentfs.fuse.kernel.KernelMount;
import io.coherentfs.fuse.kernel.KernelSession;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * One mount's daemon, in the foreground: lock the image, open the engine, serve FUSE until the
 * mount goes away, then shut down cleanly.
 *
 * <h2>Life cycle</h2>
 * <ol>
 * <li>Check the mountpoint (exists, a directory, not a mount point already, empty unless
 *     {@code nonempty}) and the image (exists, large enough).
 * <li>Refuse an image or device that is mounted now (a FUSE mount in mountinfo with it as source);
 *     then {@link ImageLock}: an exclusive flock on the image for the daemon's whole life. A
 *     previous daemon of an unmounted image may still be writing back (a plain FUSE umount does
 *     not wait for it): we wait up to {@link #LOCK_WAIT} for its lock.
 * <li>Open the device ({@link DirectDevice}, O_DIRECT; block devices also O_EXCL unless mounted
 *     as fuseblk, where the kernel claims the device itself) and the engine with one
 *     {@link PrometheusMeterRegistry} shared by engine and frontend; start the daemon socket
 *     (stats, remount requests) and, if asked, the HTTP endpoint. A read-only mount opens the
 *     device writable when it can, so that a later remount,rw needs no reopen.
 * <li>Serve FUSE with the transport {@code transport=} chose: libfuse's multithreaded loop, or
 *     {@link KernelSession} on /dev/fuse. Either returns when the mount goes away: {@code umount},
 *     {@code fusermount -u}, or our own detach on SIGINT/SIGTERM (the JVM owns those signals, so
 *     libfuse installs no handlers of its own; ours detach the mount, which ends the loop).
 * <li>{@link CoherentFs#close()} when the transport ends the session (libfuse's destroy callback,
 *     FUSE_DESTROY or the end of the kernel transport's loop — for
 *     fuseblk the kernel sends FUSE_DESTROY from umount and waits for our answer, so {@code umount}
 *     returns only once everything is written back): write back, commit, mark clean; close the
 *     device; drop the lock (last, so that a waiting mount starts only on a clean image).
 * </ol>
 */
public final class Daemon {
    private static final Logger LOG = Logger.getLogger(Daemon.class.getName());

    /** Timeouts we give the kernel; see README "Attribute and entry timeouts". */
    static final String ENTRY_TIMEOUT = "entry_timeout=5";
    static final String NEGATIVE_TIMEOUT = "negative_timeout=5";
    static final String ATTR_TIMEOUT = "attr_timeout=0";

    /** How long a new mount waits for the daemon of a just-unmounted image to finish writing back. */
    static final Duration LOCK_WAIT = Duration.ofSeconds(120);

    private final Path image;
    private final Path mountpoint;
    private final MountOptions options;
    private final CountDownLatch finished = new CountDownLatch(1);
    private volatile boolean stopping;
    private boolean engineClosed;

    public Daemon(Path image, Path mountpoint, MountOptions options) {
        this.image = image.toAbsolutePath().normalize();
        this.mountpoint = mountpoint;
        this.options = options;
    }

    /** The checks that need no lock, shared with the daemonizing parent so it fails fast. */
    public static Path checkMountpoint(Path mountpoint, MountOptions options) throws IOException {
        if (!Files.exists(mountpoint)) {
            throw new MountException("mountpoint " + mountpoint + " does not exist");
        }
        if (!Files.isDirectory(mountpoint)) {
            throw new MountException("mountpoint " + mountpoint + " is not a directory");
        }
        Path real = mountpoint.toRealPath();
        var there = Mounts.at(real);
        if (there.isPresent()) {
            throw new MountException("mountpoint " + real + " is busy: "
                    + there.get().source() + " (" + there.get().fstype() + ") is mounted there");
        }
        if (!options.fuseOptions().contains("nonempty")) {
            try (DirectoryStream<Path> d = Files.newDirectoryStream(real)) {
                if (d.iterator().hasNext()) {
                    throw new MountException("mountpoint " + real
                            + " is not empty (give -o nonempty to mount over its contents)");
                }
            }
        }
        return real;
    }

    public static void checkImage(Path image) throws IOException {
        if (!Files.exists(image)) {
            throw new MountException(image + " does not exist");
        }
        if (Files.isRegularFile(image) && Files.size(image) < Layout.MINIMUM_BYTES) {
            throw new MountException(image + " is too small: " + Files.size(image)
                    + " bytes, a coherentfs needs at least " + Layout.MINIMUM_BYTES + " (8 MiB)");
        }
        var mounted = Mounts.mountedFrom(image);
        if (mounted.isPresent()) {
            throw new MountException(image + " is already mounted on " + mounted.get().mountpoint()
                    + "; unmount it first");
        }
    }

    /** Whether this mount is a fuseblk mount: block devices unless {@code nofuseblk}. */
    static boolean fuseblk(Path image, MountOptions options) throws IOException {
        boolean device = DirectDevice.isBlockDevice(image);
        if (Boolean.TRUE.equals(options.fuseblk()) && !device) {
            throw new MountException("-o fuseblk needs a block device; " + image + " is not one");
        }
        return device && !Boolean.FALSE.equals(options.fuseblk());
    }

    /** Mounts and serves until unmounted; returns normally after a clean shutdown. */
    public void run() throws IOException {
        Path mp = checkMountpoint(mountpoint, options);
        checkImage(image);
        LOG.info("mounting " + image + " on " + mp + " (pid " + ProcessHandle.current().pid() + ")");
        boolean blk = fuseblk(image, options);
        try (ImageLock lock = ImageLock.acquire(image, LOCK_WAIT)) {
            PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
            try (DirectDevice device = openDevice(blk)) {
                LOG.info("opened " + image + (device.isReadOnly() ? " read-only" : "") + ", IO engine "
                        + device.engineName() + (blk ? ", mounting as fuseblk" : ""));
                CoherentFs fs = openEngine(device, registry);
                try (MetricsEndpoints endpoints = new MetricsEndpoints(registry, "# coherentfs image=" + image
                        + " mountpoint=" + mp + " pid=" + ProcessHandle.current().pid() + "\n", fs::remount)) {
                    serve(fs, registry, endpoints, mp, blk);
                } finally {
                    closeEngine(fs);
                }
            }
        } finally {
            finished.countDown();
        }
        LOG.info("unmounted " + mp + "; " + image + " is clean");
    }

    /**
     * The device, writable unless that is impossible and the mount is read-only anyway (an image
     * without write permission, a read-only block device): then read-only, and remount,rw fails.
     */
    private DirectDevice openDevice(boolean fuseblk) throws IOException {
        DirectDevice.Options o = DirectDevice.Options.DEFAULT.withExclusive(!fuseblk);
        try {
            return DirectDevice.open(image, o);
        } catch (ErrnoException e) {
            boolean denied = e.errno() == Errno.EACCES.code() || e.errno() == Errno.EROFS.code()
                    || e.errno() == Errno.EPERM.code();
            if (!options.readOnly() || !denied) {
                throw e;
            }
            LOG.info(image + " is not writable (" + e.getMessage() + "): opened read-only");
            return DirectDevice.open(image, o.withReadOnly(true));
        }
    }

    private CoherentFs openEngine(DirectDevice device, PrometheusMeterRegistry registry) throws IOException {
        try {
            return CoherentFs.open(device, options.engineOptions(registry));
        } catch (IOException | RuntimeException e) {
            String m = String.valueOf(e.getMessage());
            if (m.contains("not a coherentfs")) {
                throw new MountException(image + " is not a coherentfs image (" + m
                        + "); format it with coherentfs mkfs", e);
            }
            throw e;
        }
    }

    private void serve(CoherentFs fs, PrometheusMeterRegistry registry, MetricsEndpoints endpoints, Path mp,
            boolean fuseblk) throws IOException {
        endpoints.startSocket(mp);
        if (options.metrics() != null) {
            endpoints.startHttp(options.metrics());
        }
        Runnable closeAtDestroy = () -> {
            try {
                closeEngine(fs);
            } catch (IOException | RuntimeException e) {
                LOG.log(Level.SEVERE, "closing the engine at unmount failed: " + e.getMessage(), e);
            }
        };
        installSignalHandlers(mp);
        switch (options.transport()) {
            case LIBFUSE -> {
                CoherentFuse fuse = new CoherentFuse(fs, registry, true);
                fuse.onDestroy(closeAtDestroy);
                int rc = fuse.run(mp.toString(), libfuseOptions(fuseblk), options.debug());
                if (rc != 0 && !stopping) {
                    throw new IOException("libfuse could not mount " + mp + " (status " + rc
                            + "; its reason is in the log above)");
                }
            }
            case KERNEL -> {
                KernelSession session = new KernelSession(fs, registry, kernelMount(mp, fuseblk), options.threads(),
                        true, options.fuseOptions().contains("allow_root"));
                session.storeGate(options.kernelStoreGate());
                session.directWriteInvalidation(options.directWriteInvalidation());
                session.onDestroy(closeAtDestroy);
                session.run();
            }
        }
    }

    /** Transport 2's mount(2): the same source, type and options libfuse would have used. */
    KernelMount kernelMount(Path mp, boolean fuseblk) throws MountException {
        List<String> o = fuseOptions();
        for (String s : o) {
            if (s.equals("auto_unmount")) {
                LOG.warning("auto_unmount is a libfuse feature; transport=kernel ignores it");
            }
        }
        return KernelMount.of(source(fuseblk), mp.toString(), options.subtype(), fuseblk, Layout.BLOCK_SIZE, o,
                options.kernelFlags(), LinuxSyscalls.getuid(), LinuxSyscalls.getgid());
    }

    /** The mount's source: the device for fuseblk (the kernel opens it by that name), else fsname= or the image. */
    private String source(boolean fuseblk) throws MountException {
        if (fuseblk) {
            // The kernel opens the device named by fsname itself, and sizes its blocks by blksize.
            if (options.fsname() != null && !options.fsname().equals(image.toString())) {
                throw new MountException("fsname= cannot be given for a fuseblk mount (the kernel opens "
                        + image + " by that name); use -o nofuseblk to mount it as plain fuse");
            }
            return image.toString();
        }
        return options.fsname() != null ? options.fsname() : image.toString();
    }

    /** Closes the engine once: from libfuse's destroy callback, else after the loop. */
    private void closeEngine(CoherentFs fs) throws IOException {
        synchronized (this) {
            if (engineClosed) {
                return;
            }
            engineClosed = true;
        }
        long t = System.nanoTime();
        fs.close();
        LOG.info("engine closed: written back, committed, marked clean (" + (System.nanoTime() - t) / 1_000_000 + " ms)");
    }

    /**
     * The FUSE options both transports mount with: default_permissions (the kernel checks mode
     * bits), allow_other when root mounts (unless allow_root), and what the user gave.
     */
    List<String> fuseOptions() {
        List<String> o = new ArrayList<>();
        o.add("default_permissions");
        if (Mounts.isRoot() && !options.fuseOptions().contains("allow_root")) {
            o.add("allow_other");
        }
        for (String s : options.fuseOptions()) {
            if (!o.contains(s)) {
                o.add(s);
            }
        }
        return o;
    }

    /**
     * libfuse 2's command-line options: the common ones plus what only libfuse needs — fsname
     * and subtype (it builds the mount from them), blkdev/blksize for fuseblk, use_ino (its path
     * API otherwise invents inode numbers), big_writes and max_write=131072 (its request limit),
     * and the entry/attribute timeouts it applies itself.
     */
    List<String> libfuseOptions(boolean fuseblk) throws MountException {
        List<String> o = new ArrayList<>();
        if (fuseblk) {
            o.add("blkdev");
            o.add("blksize=" + Layout.BLOCK_SIZE);
        }
        o.add("fsname=" + source(fuseblk).replace(",", "\\,"));
        o.add("subtype=" + options.subtype());
        o.add("use_ino");
        o.add("big_writes");
        o.add("max_write=131072");
        o.add(ENTRY_TIMEOUT);
        o.add(NEGATIVE_TIMEOUT);
        o.add(ATTR_TIMEOUT);
        for (String s : fuseOptions()) {
            if (!o.contains(s)) {
                o.add(s);
            }
        }
        return o;
    }

    @SuppressWarnings("restriction")
    private void installSignalHandlers(Path mp) {
        sun.misc.SignalHandler h = sig -> {
            LOG.info("SIG" + sig.getName() + ": unmounting " + mp);
            stop(mp);
        };
        for (String s : List.of("INT", "TERM", "HUP")) {
            try {
                sun.misc.Signal.handle(new sun.misc.Signal(s), h);
            } catch (IllegalArgumentException e) {
                LOG.fine("cannot handle SIG" + s + ": " + e.getMessage());
            }
        }
        // Any other way out of the JVM (System.exit elsewhere, an uncaught error) still unmounts
        // and waits for the clean close.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            if (finished.getCount() > 0) {
                stop(mp);
                try {
                    finished.await(60, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        }, "unmount-on-exit"));
    }

    private void stop(Path mp) {
        stopping = true;
        try {
            if (Mounts.at(mp).isPresent()) {
                Mounts.detach(mp);
            }
        } catch (IOException e) {
            LOG.log(Level.WARNING, "cannot unmount " + mp + ": " + e.getMessage(), e);
        }
    }

    /** The default log file: /var/log/coherentfs/NAME.log, else IMAGE.log beside the image. */
    public static Path defaultLog(Path image) {
        Path dir = Path.of("/var/log/coherentfs");
        String name = image.getFileName() == null ? "coherentfs" : image.getFileName().toString();
        try {
            Files.createDirectories(dir);
            if (Files.isWritable(dir)) {
                return dir.resolve(name + ".log");
            }
        } catch (IOException e) {
            // not ours to write: fall back beside the image
        }
        return image.toAbsolutePath().resolveSibling(name + ".log");
    }
}
