package io.coherentfs.core.alloc;

import java.util.ArrayList;
import java.util.List;

/**
 * What {@link BlockAllocator#check} found, as maximal runs of blocks.
 *
 * @param leaked           blocks marked in use that nothing references (space lost until repaired)
 * @param referencedButFree blocks something references that the bitmap marks free: the allocator
 *                         could hand them out again (double allocation)
 */
public record CheckReport(List<Extent> leaked, List<Extent> referencedButFree) {
    public CheckReport {
        leaked = List.copyOf(leaked);
        referencedButFree = List.copyOf(referencedButFree);
    }

    /** True when the bitmap agrees with the references. */
    public boolean clean() {
        return leaked.isEmpty() && referencedButFree.isEmpty();
    }

    /** One line per problem run, for fsck's output. */
    public List<String> messages() {
        List<String> out = new ArrayList<>();
        for (Extent e : referencedButFree) {
            out.add(e + ": referenced but marked free in the bitmap (could be allocated twice)");
        }
        for (Extent e : leaked) {
            out.add(e + ": marked in use in the bitmap but referenced by nothing (leaked)");
        }
        return out;
    }
}
