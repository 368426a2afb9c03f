<?php
/*
 * An application that cannot load: every worker dies before it serves,
 * and the pool goes into its crash loop (test_observe.py: /ready is 503,
 * `mkd status` exits 1).
 */
declare(strict_types=1);

exit(3);
