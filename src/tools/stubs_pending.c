/* Temporary: commands being written. */
