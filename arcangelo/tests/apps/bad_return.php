<?php
// Not an application: it returns no handler.
return 42;
