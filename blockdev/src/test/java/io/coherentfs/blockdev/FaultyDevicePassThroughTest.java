package io.coherentfs.blockdev;

import io.coherentfs.blockdev.fault.FaultyDevice;
import java.io.IOException;
import java.nio.file.Path;

/** A FaultyDevice with no fault armed must be indistinguishable from the device it wraps. */
class FaultyDevicePassThroughTest extends BlockDeviceContract {
    @Override
    protected BlockDevice open(Path image) throws IOException {
        return new FaultyDevice(DirectDevice.open(image));
    }
}
