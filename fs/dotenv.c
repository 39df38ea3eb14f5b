/* fs/dotenv.c - to be written */
