/* fs/config.c - to be written */
