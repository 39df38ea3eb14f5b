extern int secretfs_ops_placeholder; int secretfs_ops_placeholder;
