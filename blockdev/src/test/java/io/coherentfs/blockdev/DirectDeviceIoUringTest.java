package io.coherentfs.blockdev;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.coherentfs.blockdev.engine.IoEngineKind;
import java.io.IOException;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;

class DirectDeviceIoUringTest extends BlockDeviceContract {
    @BeforeAll
    static void kernelAllowsIoUring() {
        assumeTrue(KernelSupport.ioUringAllowed(), "kernel.io_uring_disabled forbids io_uring here");
    }

    @Override
    protected BlockDevice open(Path image) throws IOException {
        return DirectDevice.open(image, DirectDevice.Options.DEFAULT.withEngine(IoEngineKind.IO_URING).withQueueDepth(16));
    }
}
