package io.coherentfs.blockdev;

import io.coherentfs.blockdev.engine.IoEngineKind;
import java.io.IOException;
import java.nio.file.Path;

class DirectDeviceThreadPoolTest extends BlockDeviceContract {
    @Override
    protected BlockDevice open(Path image) throws IOException {
        return DirectDevice.open(image, DirectDevice.Options.DEFAULT.withEngine(IoEngineKind.THREAD_POOL).withQueueDepth(4));
    }
}
