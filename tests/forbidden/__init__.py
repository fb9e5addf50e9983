"""An application's own forbidden views, registered the ways Pyramid apps register them."""
